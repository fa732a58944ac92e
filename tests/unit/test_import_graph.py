"""The shared layer's modules depend on each other without cycles.

Every module under layers/common/agenthq is parsed with ``ast``; every import
counts — at module level and inside functions (an import deferred into a
function still makes a cycle, it only hides it) — except those under
``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "layers" / "common"
ROOT = LAYER / "agenthq"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LAYER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The agenthq modules an import statement runs (the imported module and the packages above it)."""
    targets: set[str] = set()
    if isinstance(node, ast.Import):
        targets = {alias.name for alias in node.names}
    else:
        assert node.level == 0, f"{module}: the layer uses absolute imports"
        base = node.module or ""
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            targets.add(candidate if candidate in MODULES else base)
    runs: set[str] = set()
    for target in targets:
        if not target.startswith("agenthq"):
            continue
        parts = target.split(".")
        for end in range(1, len(parts) + 1):
            name = ".".join(parts[:end])
            # A package that contains the importer is already initialising: no edge to it.
            if name in MODULES and not module.startswith(name + ".") and name != module:
                runs.add(name)
    return runs


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = set().union(set(), *(_resolve(module, node) for node in _imports(tree)))
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def walk(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = walk(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = walk(start)
        if cycle:
            return cycle
    return None


GRAPH = import_graph()


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_ones():
    assert "agenthq.adapters.stepfunctions" in GRAPH["agenthq.services"]  # imported inside a cached_property
    assert "agenthq.runs.engine" not in GRAPH["agenthq.services"]
    assert "agenthq.services" not in GRAPH["agenthq.runs.engine"]  # only under TYPE_CHECKING


def test_the_shared_layer_has_no_import_cycle():
    assert _find_cycle(GRAPH) is None, " → ".join(_find_cycle(GRAPH) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_step_side_does_not_depend_on_the_http_side():
    assert "agenthq.runs.api" not in GRAPH["agenthq.runs.engine"]
    assert "agenthq.runs.api" not in GRAPH["agenthq.runs.launch"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "agenthq.services"))
def test_domain_modules_take_services_from_their_caller(module):
    """The composition root is imported for type hints only: nothing in the
    layer builds or fetches ``Services`` itself."""
    assert "agenthq.services" not in GRAPH[module]
