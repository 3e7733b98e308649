"""The Functions entry point: creates the app and registers each area's blueprint; nothing else."""

import azure.functions as func

from functions.admin_register import bp as admin_register
from functions.bookings import bp as bookings
from functions.eligibility import bp as eligibility
from functions.health import bp as health

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (health, eligibility, admin_register, bookings):
    app.register_functions(blueprint)
