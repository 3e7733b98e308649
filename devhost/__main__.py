"""`python -m devhost`: start the emulators if needed, then serve function_app.py like `func start`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from devhost import emulators as emu

if TYPE_CHECKING:
    from devhost.runtime import FunctionHost

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".devhost"
log = logging.getLogger("devhost")


def load_local_settings() -> Path | None:
    """Put local.settings.json's Values (or the example's) into the environment, as `func start` does.

    Variables already set win, so tests and shells can point devhost at other ports.
    """
    for name in ("local.settings.json", "local.settings.example.json"):
        path = ROOT / name
        if path.exists():
            values = json.loads(path.read_text()).get("Values", {})
            for key, value in values.items():
                os.environ.setdefault(key, str(value))
            return path
    return None


def start_missing_emulators(running: emu.Emulators) -> None:
    """Start Azurite and the Cosmos emulator unless something already answers where settings point."""
    storage = os.environ.get("AzureWebJobsStorage", "")
    local_storage = emu.storage_endpoints(storage) if storage else None
    if local_storage:
        host, ports = local_storage
        if all(emu.answers(host, port) for port in (ports["blob"], ports["queue"])):
            log.info("Azurite already answers on %s", host)
        else:
            log.info("starting Azurite (data in %s)", STATE / "azurite")
            emu.start_azurite(running, host, ports, STATE / "azurite", STATE / "azurite.log")
    cosmos = emu.cosmos_host_port(os.environ.get("COSMOS_ENDPOINT", ""))
    if cosmos:
        host, port = cosmos
        bind = "127.0.0.1" if host == "localhost" else host
        if emu.answers(bind, port):
            log.info("Cosmos DB emulator already answers on %s:%s", host, port)
        else:
            log.info("starting the Cosmos DB emulator on %s:%s", host, port)
            ca = emu.start_cosmos(running, bind, port, STATE / "cosmos-cert", STATE / "cosmos.log")
            os.environ.setdefault("COSMOS_CA_CERT", str(ca))


# devhost's ACS stand-in key when no setting names one: a development value, not a secret.
DEV_ACS_KEY = "ZGV2aG9zdC1hY3MtbG9jYWwtZGV2ZWxvcG1lbnQtb25seQ=="


def point_acs_at_devhost(port: int) -> bool:
    """Aim ACS_CONNECTION_STRING at devhost's own ACS stand-in; whether devhost should serve one.

    Unset (and no ACS_ENDPOINT), it is set to this port. A loopback http endpoint means the stand-in,
    so its port follows devhost's (the example settings say 7071; tests and DEVHOST_PORT use others).
    Anything else is a real ACS resource and is left alone.
    """
    from urllib.parse import urlsplit

    from shared.adapters.acs_messages import parse_connection_string

    value = os.environ.get("ACS_CONNECTION_STRING")
    if value is None:
        if os.environ.get("ACS_ENDPOINT"):
            return False
        key = DEV_ACS_KEY
    else:
        endpoint, key = parse_connection_string(value)
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            return False
    os.environ["ACS_CONNECTION_STRING"] = f"endpoint=http://127.0.0.1:{port}/;accesskey={key}"
    return True


def add_acs_stand_in(host: FunctionHost) -> None:
    """Serve ACS SMS and email beside the functions, checking requests with the app's own key."""
    from devhost.acs_email import EmailStandIn
    from devhost.acs_sms import SmsStandIn, access_key

    key = access_key(os.environ["ACS_CONNECTION_STRING"])
    for method, path, handler in (*SmsStandIn(key).routes(), *EmailStandIn(key).routes()):
        host.add_dev_route(method, path, handler)


async def serve(port: int, acs_stand_in: bool = False) -> None:
    from devhost.runtime import FunctionHost
    from shared.adapters.azure_provisioning import provision
    from shared.adapters.clients import close_clients, get_clients

    await provision(get_clients())
    sys.path.insert(0, str(ROOT))
    from devhost.hostconfig import with_overrides
    from function_app import app

    host_json = with_overrides(json.loads((ROOT / "host.json").read_text()), os.environ)
    host = FunctionHost(app, host_json, os.environ.get("AzureWebJobsStorage"), port)
    if acs_stand_in:
        add_acs_stand_in(host)
    from devhost.site import StaticSite

    host.serve_pages(StaticSite().handle)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await host.start()
    demo: asyncio.Task[None] | None = None
    if os.environ.get("DEMO_DATA", "1") != "0":
        from devhost.demo_data import load_demo_data

        # Served while it loads: the population takes a minute or two against the emulator.
        demo = asyncio.create_task(load_demo_data())
    print(f"booking site:  http://127.0.0.1:{port}/ (find a booking: /manage, staff: /staff)", flush=True)
    print(f"devhost ready: http://127.0.0.1:{port}/api/health", flush=True)
    print(f"  OpenAPI:     http://127.0.0.1:{port}/api/openapi.json", flush=True)
    print(f"  staff login: http://127.0.0.1:{port}/dev/signin?roles=NationalAdmin", flush=True)
    print(f"  site staff:  http://127.0.0.1:{port}/dev/signin?roles=SiteStaff&name=Site%20Staff "
          "(today's day list at VC001)", flush=True)
    if acs_stand_in:
        print(f"  texts sent:  http://127.0.0.1:{port}/dev/sms (emails: /dev/email)", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if demo is not None and not demo.done():
            demo.cancel()
        await host.stop()
        await close_clients()


def main() -> None:
    logging.basicConfig(level=os.environ.get("DEVHOST_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings_file = load_local_settings()
    log.info("settings from %s", settings_file.name if settings_file else "the environment only")
    port = int(os.environ.get("DEVHOST_PORT", "7071"))
    acs_stand_in = point_acs_at_devhost(port)
    running = emu.Emulators()
    try:
        start_missing_emulators(running)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(port, acs_stand_in))
    finally:
        running.stop()


if __name__ == "__main__":
    main()
