"""devhost as a separate process, as `make dev` runs it, pointed at this session's emulators."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.emulators import free_port
from tests.conftest import ROOT, EmulatorEndpoints


@pytest.fixture(scope="session")
def devhost_url(emulators: EmulatorEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("devhost") / "devhost.log"
    env = {**os.environ, **emulators.environment(), "DEVHOST_PORT": str(port), "DEMO_DATA": "0",
           "DEVHOST_LOG_LEVEL": "WARNING"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "devhost"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"devhost exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"devhost did not answer:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
