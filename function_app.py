"""The Functions entry point: creates the app and registers each area's blueprint; nothing else."""

import azure.functions as func

from functions.health import bp as health

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health)
