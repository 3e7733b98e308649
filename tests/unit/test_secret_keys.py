"""The keys fail closed in Azure (docs/security.md, finding 3): the app refuses to start with a weak key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import DEVELOPMENT_KEY, MIN_KEY_CHARS, Settings, UnsafeSettingsError

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("PII_HASH_KEY", "WAITING_ROOM_SIGNING_KEY", "WAITING_ROOM_PREVIOUS_SIGNING_KEY", "GP_INVITE_SIGNING_KEY")
GOOD = "k3y-" + "x" * MIN_KEY_CHARS


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment the Functions host sets in Azure, with good keys unless a test says otherwise."""
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "0123456789abcdef")
    for name in KEYS:
        monkeypatch.setenv(name, GOOD)
    return monkeypatch


@pytest.mark.parametrize("name", KEYS)
@pytest.mark.parametrize(("value", "why"), [
    (DEVELOPMENT_KEY, "development default"),
    ("Sh0rt-but-not-empty", f"shorter than {MIN_KEY_CHARS}"),
    ("@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/PII-HASH-KEY/)", "unresolved Key Vault"),
])
def test_a_weak_key_in_azure_refuses_to_start_without_quoting_it(azure: pytest.MonkeyPatch, name: str, value: str,
                                                                 why: str) -> None:
    azure.setenv(name, value)
    with pytest.raises(UnsafeSettingsError) as raised:
        Settings()
    assert name in str(raised.value) and why in str(raised.value)
    assert value not in str(raised.value) and GOOD not in str(raised.value)


def test_the_default_keys_are_refused_where_the_host_sets_only_the_site_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_SITE_NAME", "func-abc123")
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UnsafeSettingsError, match="PII_HASH_KEY is the development default"):
        Settings()


def test_good_keys_in_azure_and_the_defaults_locally_start(azure: pytest.MonkeyPatch) -> None:
    assert Settings().in_azure
    for name in ("WEBSITE_INSTANCE_ID", *KEYS):
        azure.delenv(name)
    local = Settings()
    assert not local.in_azure and local.pii_hash_key == DEVELOPMENT_KEY
    assert DEVELOPMENT_KEY not in repr(local)


def test_the_function_app_does_not_start_in_azure_with_the_development_keys() -> None:
    env = {key: value for key, value in os.environ.items() if key not in KEYS}
    env |= {"WEBSITE_INSTANCE_ID": "0123456789abcdef", "WEBSITE_SITE_NAME": "func-test"}
    started = subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert started.returncode != 0
    assert "UnsafeSettingsError: Refusing to start in Azure" in started.stderr


# ---- infra: the PII key is pinned by version and written once ----------------------------------------------


def _bicep(path: str) -> str:
    return "\n".join(line for line in (ROOT / path).read_text().splitlines() if not line.lstrip().startswith("//"))


def test_the_pii_key_reference_names_a_version_that_provisioning_never_rewrites() -> None:
    vault = _bicep("infra/modules/keyvault.bicep")
    # The secret is written only while no version is pinned (the first provision) ...
    assert re.search(r"resource piiHashKeySecret '[^']+' = if \(empty\(piiHashKeyVersion\)\)", vault)
    # ... and the app setting's URI always ends in a version.
    uri = re.search(r"^output piiHashKeySecretUri string = (.+)$", vault, re.M)
    assert uri and "secrets/PII-HASH-KEY/${" in uri.group(1) and "piiHashKeyVersion" in uri.group(1)
    main = _bicep("infra/main.bicep")
    assert "output PII_HASH_KEY_VERSION string = keyVault.outputs.piiHashKeyVersion" in main
    assert "piiHashKeyVersion: piiHashKeyVersion" in main
    parameters = json.loads((ROOT / "infra" / "main.parameters.json").read_text())["parameters"]
    assert parameters["piiHashKeyVersion"]["value"] == "${PII_HASH_KEY_VERSION=}"
    app = _bicep("infra/modules/function-app.bicep")
    assert "PII_HASH_KEY: '@Microsoft.KeyVault(SecretUri=${piiHashKeySecretUri})'" in app


def test_keys_written_by_provisioning_are_long_enough_for_the_app() -> None:
    vault = _bicep("infra/modules/keyvault.bicep")
    assert f"var minKeyChars = {MIN_KEY_CHARS}" in vault
    assert "value: piiHashKeyValue" in vault and "value: signingKeyValue" in vault
