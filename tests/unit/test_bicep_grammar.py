"""Every .bicep file under infra/ parsed by a real Bicep grammar (tree-sitter-bicep), plus what security
needs of the templates: UK-only regions, and alerts on 5xx, poison queues and failing texts that read
what the app really logs."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_bicep

from shared.services.poison import DEPTH_LINE

INFRA = Path(__file__).resolve().parents[2] / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
UK_REGIONS = ["uksouth", "ukwest"]


@cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def _nodes(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _nodes(child)


def _syntax_errors(source: bytes) -> list[str]:
    tree = _parser().parse(source)
    return [f"{'MISSING' if n.is_missing else 'ERROR'} {n.type!r} at line {n.start_point[0] + 1}"
            for n in _nodes(tree.root_node) if n.is_error or n.is_missing]


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode()


def test_there_are_bicep_files_to_check() -> None:
    assert {p.name for p in BICEP_FILES} >= {"main.bicep", "alerts.bicep", "residency.bicep", "cosmos.bicep"}


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses_with_no_error_or_missing_node(path: Path) -> None:
    assert _syntax_errors(path.read_bytes()) == []


def test_the_grammar_finds_errors_when_there_are_some() -> None:
    assert _syntax_errors(b"param location string = 'uksouth\nresource r 'x@1' = {\n  name: 'a'\n")
    assert _syntax_errors(b"var regions = [\n  'uksouth'\n")


def _parameter(path: Path, name: str) -> tree_sitter.Node:
    """The decorated declaration of parameter `name`: decorators and declaration share one parent."""
    root = _parser().parse(path.read_bytes()).root_node
    for node in _nodes(root):
        if node.type == "parameter_declaration" and node.children[1:2] and _text(node.children[1]) == name:
            return node
    raise AssertionError(f"no parameter {name} in {path.name}")


def _decorators_before(node: tree_sitter.Node) -> str:
    previous = node.prev_named_sibling
    return _text(previous) if previous is not None and previous.type == "decorators" else ""


def test_the_deployment_region_is_restricted_to_the_uk() -> None:
    location = _parameter(INFRA / "main.bicep", "location")
    decorators = _decorators_before(location)
    assert "@allowed" in decorators, "main.bicep's location must be @allowed(['uksouth', 'ukwest'])"
    allowed = decorators.split("@allowed", 1)[1]
    assert sorted(part.strip().strip("'") for part in allowed.strip("()[] \n").replace("\n", ",").split(",")
                  if part.strip().strip("'")) == UK_REGIONS


def test_a_policy_holds_the_resource_group_to_uk_regions() -> None:
    residency = (INFRA / "modules" / "residency.bicep").read_text()
    assert "e56962a6-4747-49cd-b67b-bf8b01975c4c" in residency  # built-in "Allowed locations"
    assert all(f"'{region}'" in residency for region in UK_REGIONS)
    assert "module residency 'modules/residency.bicep'" in (INFRA / "main.bicep").read_text()


def test_alerts_cover_server_errors_poison_queues_and_failing_texts() -> None:
    alerts = (INFRA / "modules" / "alerts.bicep").read_text()
    assert "resultCode) >= 500" in alerts
    # The poison alert parses the very line shared/services/poison.py logs.
    prefix = DEPTH_LINE.split("%s")[0]
    assert f'startswith "{prefix}"' in alerts and f'parse message with "{prefix}"' in alerts
    # The texts alert matches the warnings shared/services/notifications.py logs.
    notifications = (INFRA.parent / "shared" / "services" / "notifications.py").read_text()
    for phrase in ("ACS refused it", "ACS busy after"):
        assert phrase in notifications and f'"{phrase}"' in alerts
    assert "DeadletteredMessages" in alerts
    main = (INFRA / "main.bicep").read_text()
    assert "module alerts 'modules/alerts.bicep'" in main
