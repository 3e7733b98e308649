"""The Functions entry point: checks the settings, creates the app and registers each area's blueprint."""

import azure.functions as func

from functions.admin_register import bp as admin_register
from functions.admin_sites import bp as admin_sites
from functions.bookings import bp as bookings
from functions.dashboard import bp as dashboard
from functions.eligibility import bp as eligibility
from functions.gp import bp as gp
from functions.health import bp as health
from functions.invitations import bp as invitations
from functions.nims import bp as nims
from functions.notifications import bp as notifications
from functions.operations import bp as operations
from functions.site_operations import bp as site_operations
from functions.sites import bp as sites
from functions.waiting_room import bp as waiting_room
from shared.settings import get_settings

# Settings are read first: in Azure the app refuses to start with a default, short or unresolved key.
get_settings()
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (health, eligibility, admin_register, bookings, waiting_room, notifications,
                  sites, admin_sites, gp, invitations, operations, site_operations, nims,
                  dashboard):
    app.register_functions(blueprint)
