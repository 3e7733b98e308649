"""The layers of shared/ as imports: pure domain, services that never reach the HTTP edge, no cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top, inside functions or under TYPE_CHECKING alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _package(module: str) -> str:
    """shared.services.sites.admin -> shared.services; shared.events -> shared.events."""
    return ".".join(module.split(".")[:2])


MODULES = {_module_name(path): _imports(path) for path in SHARED.rglob("*.py")}


def _internal(imported: set[str]) -> set[str]:
    return {name for name in imported if name.startswith("shared.") and any(
        name == module or name.startswith(module + ".") for module in MODULES)}


def test_no_import_cycle_between_the_packages_of_shared() -> None:
    graph: dict[str, set[str]] = {}
    for module, imported in MODULES.items():
        graph.setdefault(_package(module), set()).update(
            _package(name) for name in _internal(imported) if _package(name) != _package(module))
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append([*path[path.index(nxt):], nxt])
            elif len(path) < len(graph):
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, f"import cycles between packages: {cycles[:5]}"


def test_the_domain_imports_nothing_of_the_app_but_the_domain_and_no_azure() -> None:
    for module, imported in MODULES.items():
        if not module.startswith("shared.domain"):
            continue
        outside = {name for name in _internal(imported) if not name.startswith("shared.domain")}
        azure = {name for name in imported if name.startswith("azure")}
        assert not outside and not azure, f"{module} imports {sorted(outside | azure)}"


def test_services_and_domain_never_reach_the_http_edge() -> None:
    for module, imported in MODULES.items():
        if not module.startswith(("shared.services", "shared.domain", "shared.ports")):
            continue
        edge = {name for name in imported if name.startswith(("shared.api", "functions", "azure.functions"))}
        assert not edge, f"{module} imports {sorted(edge)}"


def test_services_and_domain_mention_no_http_status_or_problem() -> None:
    pattern = re.compile(r"shared\.api|ProblemError|status_code")
    for folder in ("services", "domain"):
        for path in (SHARED / folder).rglob("*.py"):
            lines = path.read_text(encoding="utf-8").splitlines()
            hits = [n for n, line in enumerate(lines, 1) if pattern.search(line)]
            assert not hits, f"{path.relative_to(ROOT)} lines {hits}"


def test_ports_and_services_use_no_azure_sdk() -> None:
    for module, imported in MODULES.items():
        if module.startswith(("shared.services", "shared.ports")):
            azure = {name for name in imported if name.startswith("azure")}
            assert not azure, f"{module} imports {sorted(azure)}"
