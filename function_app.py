"""The Functions entry point: creates the app and registers each area's blueprint; nothing else."""

import azure.functions as func

from functions.admin_register import bp as admin_register
from functions.admin_sites import bp as admin_sites
from functions.bookings import bp as bookings
from functions.eligibility import bp as eligibility
from functions.health import bp as health
from functions.notifications import bp as notifications
from functions.sites import bp as sites
from functions.waiting_room import bp as waiting_room

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (health, eligibility, admin_register, bookings, waiting_room, notifications,
                  sites, admin_sites):
    app.register_functions(blueprint)
