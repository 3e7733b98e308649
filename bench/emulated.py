"""The emulators a benchmark runs against, with the app's settings pointed at them for the run's length."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devhost.launch import EmulatorSet, start_emulators
from shared.settings import reset_settings


@contextmanager
def emulated(log_dir: Path, **settings: str) -> Iterator[EmulatorSet]:
    """Start Azurite and the Cosmos emulator, point this process's settings (and any `settings` given) at them,
    and put the environment back and stop them afterwards."""
    emulators = start_emulators(log_dir)
    saved = dict(os.environ)
    try:
        os.environ.update({**emulators.environment, **settings})
        reset_settings()
        yield emulators
    finally:
        emulators.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
