"""Start the emulators and devhost as child processes on free ports: for tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devhost import emulators as emu
from shared.settings import EMULATOR_COSMOS_KEY

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class EmulatorSet:
    """Azurite (in memory) and the Cosmos emulator on free ports, and the app settings that reach them."""

    environment: dict[str, str]
    running: emu.Emulators = field(default_factory=emu.Emulators)

    def stop(self) -> None:
        self.running.stop()


def start_emulators(log_dir: Path, database: str = "vaccination") -> EmulatorSet:
    running = emu.Emulators()
    try:
        ports = {name: emu.free_port() for name in ("blob", "queue", "table")}
        emu.start_azurite(running, "127.0.0.1", ports, None, log_dir / "azurite.log")
        cosmos_port = emu.free_port()
        ca = emu.start_cosmos(running, "127.0.0.1", cosmos_port, ROOT / ".devhost" / "cosmos-cert",
                              log_dir / "cosmos.log")
    except BaseException:
        running.stop()
        raise
    environment = {
        "AzureWebJobsStorage": emu.storage_connection_string("127.0.0.1", ports),
        "COSMOS_ENDPOINT": f"https://localhost:{cosmos_port}",
        # The Cosmos DB trigger's connection (identity-based form; devhost uses the emulator's key).
        "COSMOS__accountEndpoint": f"https://localhost:{cosmos_port}",
        "COSMOS_KEY": EMULATOR_COSMOS_KEY,
        "COSMOS_CA_CERT": str(ca),
        "COSMOS_DATABASE": database,
    }
    return EmulatorSet(environment, running)


@dataclass
class DevhostProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_devhost(environment: dict[str, str], log_path: Path, timeout: float = 60) -> DevhostProcess:
    """`python -m devhost` with these settings on a free port, returned once /api/health answers."""
    port = emu.free_port()
    env = {**os.environ, "DEMO_DATA": "0", **environment, "DEVHOST_PORT": str(port)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "devhost"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"devhost exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2):  # noqa: S310 - our own loopback URL
                break
        except urllib.error.HTTPError:
            break  # it answers, healthy or not
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"devhost did not answer:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return DevhostProcess(url, process, log_path)
