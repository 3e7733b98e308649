"""devhost: a local Azure Functions host for function_app.py, with the emulators it needs."""
