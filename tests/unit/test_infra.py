"""The Bicep in infra/ provisions what the app declares and configures what the app reads.

No Bicep compiler runs here: the templates are read as text, so these tests catch drift between
shared/resources.py, local.settings.example.json, the code's queries and the templates, not Bicep
errors.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared import resources

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "function-app.bicep"

# In local.settings.example.json but deliberately not set in Azure, and why.
NOT_IN_AZURE = {
    "COSMOS_KEY": "Cosmos DB by managed identity; the account has key auth off",
    "COSMOS_CA_CERT": "the system trust store verifies the real Cosmos DB",
    "AzureWebJobsStorage": "AzureWebJobsStorage__blobServiceUri / __queueServiceUri with the managed identity",
    "ACS_CONNECTION_STRING": "ACS_ENDPOINT with the managed identity",
    "FUNCTIONS_WORKER_RUNTIME": "Flex Consumption takes the runtime from functionAppConfig and rejects the setting",
}

# Not in local.settings.example.json, but the app or the host cannot run in Azure without them.
AZURE_ONLY = (
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AZURE_CLIENT_ID",
    "ACS_ENDPOINT",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "SERVICEBUS_CONNECTION__fullyQualifiedNamespace",
)

KEY_VAULT_SETTINGS = ("PII_HASH_KEY", "WAITING_ROOM_SIGNING_KEY", "GP_INVITE_SIGNING_KEY")

# Adapters that write a per-document `ttl`, and the container each writes it to. Cosmos DB ignores
# `ttl` unless the container has a default TTL, so each of these needs `ttl: true` in main.bicep.
TTL_WRITERS = {
    "cosmos_patients.py": resources.PATIENTS.name,  # eligibility lock-out stubs for unknown numbers
    "cosmos_notifications.py": resources.DELIVERIES.name,  # delivery records
    "cosmos_waiting_room.py": resources.WAITING_ROOM.name,  # join journals, admissions used
    "cosmos_sites.py": resources.CONFIG.name,  # admin idempotency keys (CosmosIdempotencyKeys)
    "cosmos_bookings.py": resources.BOOKINGS.name,  # booking documents and entries (shared/domain/retention.py)
    "cosmos_dashboard.py": resources.DASHBOARD.name,  # the dashboard's counters, kept a week past their day
}

# Every path the app filters the bookings container on; anything else is excluded from indexing.
BOOKINGS_INDEXED = frozenset(
    {"type", "bookingStatus", "deadlineEpoch", "cleanupPending", "outboxPending", "moveEpoch", "siteId", "localDate",
     "status", "start", "sessionId", "product", "booked", "capacity"}
)


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


@cache
def _text(path: Path) -> str:
    return _strip_comments(path.read_text())


def _all_bicep() -> str:
    return "\n".join(_text(path) for path in sorted(INFRA.rglob("*.bicep")))


def _var(text: str, name: str) -> str:
    """The whole expression assigned to `var name`, which may span lines (a ternary of two objects)."""
    match = re.search(rf"^var {re.escape(name)} = ", text, re.M)
    assert match, f"var {name} not found"
    depth, in_string = 0, False
    for i in range(match.end(), len(text)):
        ch = text[i]
        if in_string:
            in_string = not (ch == "'" and text[i - 1] != "\\")
        elif ch == "'":
            in_string = True
        elif ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        elif ch == "\n" and depth == 0:
            return text[match.end():i]
    return text[match.end():]


def _strings(block: str) -> list[str]:
    return re.findall(r"'([^'$]*)'", block)


def _top_level_keys(block: str) -> set[str]:
    """Keys of the outermost objects in `block` (both branches of a ternary)."""
    keys, depth, in_string = set(), 0, False
    for i, ch in enumerate(block):
        if in_string:
            in_string = not (ch == "'" and block[i - 1] != "\\")
        elif ch == "'":
            in_string = True
        elif ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        elif ch == "\n" and depth == 1:
            key = re.match(r"\s*'?([A-Za-z_][A-Za-z0-9_]*)'?\s*:", block[i + 1:])
            if key:
                keys.add(key.group(1))
    return keys


def _cosmos_containers() -> dict[str, dict[str, str]]:
    """name -> the container's object text fields, from main.bicep's cosmosContainers."""
    block = _var(_text(MAIN), "cosmosContainers")
    found: dict[str, dict[str, str]] = {}
    for entry in re.finditer(r"\n  \{\n(.*?)\n  \}", block, re.S):
        body = entry.group(1)
        fields = dict(re.findall(r"^    (\w+): (.+)$", body, re.M))
        found[fields["name"].strip("'")] = {"body": body, **fields}
    return found


@cache
def _app_settings() -> dict[str, str]:
    """Setting name -> its Bicep value expression, over every object the appsettings resource unions."""
    text = _text(FUNCTION_APP)
    resource = re.search(r"name: 'appsettings'\n\s*properties: union\(([^)]*)\)", text)
    assert resource, "the appsettings resource should set properties: union(...) of setting objects"
    settings: dict[str, str] = {}
    for var in (name.strip() for name in resource.group(1).split(",")):
        block = _var(text, var)
        for key in _top_level_keys(block):
            value = re.search(rf"^\s*{re.escape(key)}: (.+)$", block, re.M)
            assert value, key
            settings[key] = value.group(1)
    return settings


def test_every_cosmos_container_has_its_partition_key() -> None:
    declared = {c.name: c.partition_key for c in resources.COSMOS_CONTAINERS}
    in_bicep = {name: fields["partitionKey"].strip("'") for name, fields in _cosmos_containers().items()}
    assert in_bicep == declared


def test_the_database_is_the_one_the_app_reads() -> None:
    local = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert re.search(rf"^var cosmosDatabaseName = '{local['COSMOS_DATABASE']}'$", _text(MAIN), re.M)
    assert _app_settings()["COSMOS_DATABASE"] == "cosmosDatabase"


def test_containers_whose_documents_carry_ttl_have_expiry_on() -> None:
    adapters = ROOT / "shared" / "adapters"
    writers = {path.name for path in adapters.glob("*.py") if '"ttl"' in path.read_text()}
    assert writers == set(TTL_WRITERS), "an adapter started or stopped writing `ttl`: update TTL_WRITERS"
    ttl_on = {name for name, fields in _cosmos_containers().items() if fields["ttl"] == "true"}
    assert ttl_on == set(TTL_WRITERS.values())
    assert "defaultTtl: c.ttl ? -1 : null" in _text(INFRA / "modules" / "cosmos.bicep")


def _where_fields(query: str) -> set[str]:
    return set(re.findall(r"\bc\.(\w+)", query.split(" WHERE ", 1)[1])) - {"id"}


def _string_constants(path: Path, assigned_to: str | None = None) -> list[str]:
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST]
    if assigned_to is not None:
        nodes = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == assigned_to for t in n.targets)]
        assert nodes, f"{assigned_to} not found in {path.name}"
    else:
        nodes = list(ast.walk(tree))
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_bookings_index_exactly_the_paths_the_app_queries() -> None:
    """Cosmos DB rejects a query filtering on a path excluded from the index, so a new filter needs a new path."""
    adapters = ROOT / "shared" / "adapters"
    queries = [q for q in _string_constants(adapters / "cosmos_bookings.py") if q.startswith("SELECT")]
    queries += _string_constants(adapters / "cosmos_notifications.py", "_CONFIRMED_STARTING")  # the reminder scan
    # Slot documents live in the bookings container too: the slot searches and the slot recount.
    queries += [q for q in _string_constants(adapters / "cosmos_sites.py") if q.startswith("SELECT")]
    queries += [q for q in _string_constants(adapters / "cosmos_nims.py") if "c.type = 'slot'" in q]
    queried = set().union(*(_where_fields(q) for q in queries if " WHERE " in q))
    bookings = _cosmos_containers()[resources.BOOKINGS.name]["body"]
    indexed = {path.removeprefix("/").removesuffix("/?") for path in _strings(bookings) if path.endswith("/?")}
    assert indexed == BOOKINGS_INDEXED
    assert queried <= indexed, f"queried but not indexed: {sorted(queried - indexed)}"
    cosmos = _text(INFRA / "modules" / "cosmos.bicep")
    assert "includedPaths: map(c.indexedPaths, p => { path: p })" in cosmos
    assert re.search(r"excludedPaths: \[\s*\{\s*path: '/\*'", cosmos)


def test_every_queue_and_its_poison_queue_exists() -> None:
    assert _strings(_var(_text(MAIN), "storageQueues")) == list(resources.QUEUES)
    storage = _text(INFRA / "modules" / "storage.bicep")
    assert "var allQueues = concat(queues, map(queues, q => '${q}-poison'))" in storage
    assert re.search(r"for queue in allQueues:", storage)
    assert re.search(r"queues: storageQueues\b", _text(MAIN))


def test_every_blob_container_exists() -> None:
    assert _strings(_var(_text(MAIN), "blobContainers")) == list(resources.BLOB_CONTAINERS)
    assert re.search(r"for container in blobContainers:", _text(INFRA / "modules" / "storage.bicep"))
    assert re.search(r"blobContainers: blobContainers\b", _text(MAIN))


def test_service_bus_queues_are_the_ones_with_service_bus_triggers() -> None:
    source = (ROOT / "functions" / "notifications.py").read_text()
    triggered = [getattr(resources, name) for name in
                 re.findall(r"service_bus_queue_trigger\([^)]*queue_name=(\w+)", source)]
    assert triggered
    assert sorted(_strings(_var(_text(MAIN), "serviceBusQueues"))) == sorted(triggered)
    servicebus = _text(INFRA / "modules" / "servicebus.bicep")
    assert "requiresDuplicateDetection: true" in servicebus
    assert re.search(r"^module serviceBus 'modules/servicebus.bicep' = if \(messaging == 'servicebus'\)",
                     _text(MAIN), re.M)


def test_every_local_setting_the_app_needs_is_set_in_azure() -> None:
    local = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert set(NOT_IN_AZURE) <= set(local), "an exclusion names a setting that no longer exists"
    settings = _app_settings()
    missing = sorted(set(local) - set(NOT_IN_AZURE) - set(settings))
    assert not missing, f"in local.settings.example.json but not in the function app's settings: {missing}"


@pytest.mark.parametrize("name", sorted(NOT_IN_AZURE))
def test_keys_and_local_only_settings_are_not_set_in_azure(name: str) -> None:
    assert name not in _app_settings(), NOT_IN_AZURE[name]


@pytest.mark.parametrize("name", AZURE_ONLY)
def test_azure_only_settings_are_set(name: str) -> None:
    assert name in _app_settings()


@pytest.mark.parametrize("name", KEY_VAULT_SETTINGS)
def test_secrets_come_from_key_vault(name: str) -> None:
    assert _app_settings()[name].startswith("'@Microsoft.KeyVault(SecretUri=${")


def test_no_account_keys_anywhere() -> None:
    bicep = _all_bicep()
    for forbidden in ("listConnectionStrings(", "AccountKey=", "primaryMasterKey"):
        assert forbidden not in bicep
    # The one key read: the Functions host's blob extension key, which Event Grid's webhook must carry.
    listed = re.findall(r"listKeys\(([^)]*)\)", bicep)
    assert listed == ["'${functionApp.id}/host/default', '2024-04-01'"], listed
    assert "allowSharedKeyAccess: false" in _text(INFRA / "modules" / "storage.bicep")
    assert "disableLocalAuth: true" in _text(INFRA / "modules" / "cosmos.bicep")


def test_flex_consumption_scale_settings_follow_docs_capacity() -> None:
    app = _text(FUNCTION_APP)
    assert "name: 'FC1'" in app
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3.11'", app)
    assert "instanceMemoryMB: 2048" in app
    assert re.search(r"http: \{\s*perInstanceConcurrency: 16\s*\}", app)
    assert "maximumInstanceCount: maximumInstanceCount" in app


def test_parameters_file_names_only_declared_parameters() -> None:
    declared = set(re.findall(r"^param (\w+) ", _text(MAIN), re.M))
    given = set(json.loads((INFRA / "main.parameters.json").read_text())["parameters"])
    assert given <= declared, f"unknown parameters: {sorted(given - declared)}"


def test_azd_deploys_this_folder_as_the_api_function_app() -> None:
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert re.search(r"^services:\n  api:\n(    \w+: .+\n)+", azure_yaml, re.M)
    for line in ("project: .", "language: python", "host: function"):
        assert re.search(rf"^    {re.escape(line)}$", azure_yaml, re.M), line
    assert "tags: union(tags, { 'azd-service-name': serviceName })" in _text(FUNCTION_APP)
    assert "param serviceName string = 'api'" in _text(FUNCTION_APP)


def test_gp_uploads_reach_the_blob_trigger_through_an_event_grid_system_topic() -> None:
    """Flex Consumption runs blob triggers only from Event Grid: the trigger says so, and infra wires it."""
    source = (ROOT / "functions" / "gp.py").read_text()
    trigger = re.search(r"@bp\.blob_trigger\(([^)]*)\)\s*async def (\w+)", source)
    assert trigger and "source=func.BlobSource.EVENT_GRID" in trigger.group(1)
    assert "path=BLOB_GP_UPLOADS + " in trigger.group(1)
    module = re.search(r"^module gpUploadEventGrid 'modules/event-grid.bicep' = \{(.*?)^\}", _text(MAIN), re.M | re.S)
    assert module, "main.bicep should use modules/event-grid.bicep for gp-uploads"
    params = dict(re.findall(r"^    (\w+): (.+)$", module.group(1), re.M))
    assert params["functionName"] == f"'{trigger.group(2)}'"
    assert params["containerName"] == f"'{resources.BLOB_GP_UPLOADS}'"
    assert params["storageAccountName"] == "storage.outputs.name"
    assert params["functionAppName"] == "functionApp.outputs.name"
    assert params["subscribe"] == "gpUploadEvents"
    grid = _text(INFRA / "modules" / "event-grid.bicep")
    assert re.search(r"resource systemTopic 'Microsoft.EventGrid/systemTopics@[\w-]+' = \{", grid)
    assert "source: storage.id" in grid and "topicType: 'Microsoft.Storage.StorageAccounts'" in grid
    assert re.search(r"resource \w+ 'Microsoft.EventGrid/systemTopics/eventSubscriptions@[\w-]+' = if \(subscribe\)",
                     grid)
    assert "endpointType: 'WebHook'" in grid
    assert "/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=" in grid
    assert "'Microsoft.Storage.BlobCreated'" in grid
    assert "subjectBeginsWith: '/blobServices/default/containers/${containerName}/'" in grid


# ---- The booking site (issue 14): a Storage static website whose address is BOOKING_SITE_URL and the one
# origin CORS allows. Read with the real Bicep grammar (tree-sitter-bicep), not as text.


def _tree(path: Path) -> Any:
    from tests.unit.test_bicep_grammar import _parser

    return _parser().parse(path.read_bytes()).root_node


def _walk(node: Any) -> Any:
    yield node
    for child in node.children:
        yield from _walk(child)


def _property(node: Any, *path: str) -> Any:
    """The value node at `path` of nested object properties under `node` (the first match at each step)."""
    for key in path:
        found = next((n for n in _walk(node) if n.type == "object_property" and n.named_children
                      and n.named_children[0].text.decode() == key), None)
        assert found is not None, f"no property {key}"
        node = found.named_children[-1]
    return node


def _declaration(root: Any, kind: str, name: str) -> Any:
    found = next((n for n in _walk(root) if n.type == kind and len(n.named_children) > 1
                  and n.named_children[0].text.decode() == name), None)
    assert found is not None, f"no {kind} {name}"
    return found


SITE_MODULE = INFRA / "modules" / "site.bicep"


def test_the_site_is_a_uk_storage_static_website_that_takes_no_keys() -> None:
    root = _tree(SITE_MODULE)
    account = _declaration(root, "resource_declaration", "storage")
    assert account.named_children[1].text.decode().startswith("'Microsoft.Storage/storageAccounts@")
    assert _property(account, "location").text.decode() == "location"  # main.bicep's, held to the UK
    assert _property(account, "kind").text.decode() == "'StorageV2'"
    assert _property(account, "allowSharedKeyAccess").text.decode() == "false"
    assert _property(account, "allowBlobPublicAccess").text.decode() == "false"
    url = _declaration(root, "output_declaration", "url").text.decode()
    assert "primaryEndpoints.web" in url and "length(" in url  # the origin, without the trailing slash
    main = _tree(MAIN)
    site = _declaration(main, "module_declaration", "site")
    assert site.named_children[1].text.decode() == "'modules/site.bicep'"
    assert _property(site, "location").text.decode() == "location"


def test_booking_site_url_is_the_site_unless_a_custom_address_is_given() -> None:
    main = _tree(MAIN)
    site_url = _declaration(main, "variable_declaration", "siteUrl").named_children[-1]
    assert site_url.type == "ternary_expression"
    assert [c.text.decode() for c in site_url.named_children] == [
        "empty(bookingSiteUrl)", "site.outputs.url", "bookingSiteUrl"]
    function_app = _declaration(main, "module_declaration", "functionApp")
    assert _property(function_app, "bookingSiteUrl").text.decode() == "siteUrl"
    assert _app_settings()["BOOKING_SITE_URL"] == "bookingSiteUrl"
    assert "output BOOKING_SITE_URL string = siteUrl" in _text(MAIN)


def test_cors_allows_exactly_the_booking_site_with_credentials() -> None:
    app = _declaration(_tree(FUNCTION_APP), "resource_declaration", "site")
    cors = _property(app, "siteConfig", "cors")
    origins = _property(cors, "allowedOrigins")
    assert [n.text.decode() for n in origins.named_children] == ["bookingSiteUrl"]
    assert _property(cors, "supportCredentials").text.decode() == "true"
    assert "'*'" not in cors.text.decode()


def test_azd_publishes_the_site_after_deploying_the_app() -> None:
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert re.search(r"hooks:\n  postdeploy:\n(    .*\n)*    run: python3 scripts/publish_site.py publish", azure_yaml)
    for output in ("AZURE_SITE_STORAGE_ACCOUNT_NAME", "SERVICE_API_URI"):
        assert re.search(rf"^output {output} ", _text(MAIN), re.M)
        assert output in (ROOT / "scripts" / "publish_site.py").read_text()
