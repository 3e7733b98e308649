"""Every setting the app reads is either in local.settings.example.json or documented as Azure-only."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import AliasChoices

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_a_local_value_or_is_documented_as_unset_locally() -> None:
    local = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    documented = (ROOT / "docs" / "settings.md").read_text()
    missing = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if not any(str(name) in local or f"`{name}`" in documented for name in names):
            missing.append(names[0])
    assert not missing, f"settings neither in local.settings.example.json nor docs/settings.md: {missing}"
