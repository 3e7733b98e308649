"""The OpenAPI document is true to what is served: schemathesis, every check and every phase, finds nothing.

schemathesis (PyPI) reads /api/openapi.json and sends what the document allows (examples, boundary
values, random data, chains of calls) and what it forbids, and checks every answer: never a 5xx,
only documented statuses and content types, answers matching their schemas, schema-valid requests
accepted and schema-violating ones refused, staff routes refusing a request without the principal.
The staff routes get a NationalAdmin principal.

It runs against a devhost of its own, on emulators of its own: it switches the waiting room on, changes
the campaign policy and registers sites, which would change what the other end-to-end tests see.
tests/e2e/schemathesis_hooks.py gives it valid values for the formats the document names (NHS numbers
with their check digit, UK mobiles, postcodes); tests/e2e/schemathesis.toml lists the few routes whose
rules JSON Schema cannot state, with the rules.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.launch import DevhostProcess, start_devhost, start_emulators
from shared.api.principal import encode_principal
from tests.e2e.conftest import E2E_SETTINGS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Bounded so that the run stays near a minute; a fixed seed so that a failure reproduces.
MAX_EXAMPLES = 10
SEED = 20261128


@pytest.fixture(scope="module")
def conformance_devhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    logs = tmp_path_factory.mktemp("openapi-conformance")
    emulators = start_emulators(logs, database="vaccination-openapi")
    try:
        devhost = start_devhost({**emulators.environment, **E2E_SETTINGS}, logs / "devhost.log")
        try:
            yield devhost
        finally:
            devhost.stop()
    finally:
        emulators.stop()


def _schemathesis() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    assert found, "schemathesis is not installed (requirements-dev.txt)"
    return found


def test_schemathesis_finds_no_failure_and_no_schema_error(conformance_devhost: DevhostProcess,
                                                           tmp_path: Path) -> None:
    principal = encode_principal("Schemathesis", ["NationalAdmin"])
    command = [
        _schemathesis(), "--no-color", "--config-file", str(CONFIG),
        "run", f"{conformance_devhost.url}/api/openapi.json",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(MAX_EXAMPLES),
        "--workers", "4", "--seed", str(SEED), "--header", f"x-ms-client-principal: {principal}",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600,
                         check=False)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-12000:]
    summary = report[report.rfind("SUMMARY"):]
    for trouble in ("Schema Error", "Runtime Error", "Failed Health Check", "❌", "🚫"):
        assert trouble not in summary, summary
    assert re.search(r"Tested: (\d+)", summary) and "Stateful" in summary
    # The fuzzer sent NHS numbers (the 999 test range) in bodies: none may reach the log.
    assert not re.search(r"\b999\d{7}\b", conformance_devhost.log_path.read_text(errors="replace"))
