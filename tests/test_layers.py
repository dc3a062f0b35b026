"""The package's layers, enforced: an AST walk of every import of every module.

A module may import only from its own layer or lower ones, the import graph has no
cycle (function-local imports included), and function-local imports of our modules sit
only in the entry-point layer, where they keep ``import creevey_dask`` cheap. Imports
under ``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import creevey_dask

PACKAGE = Path(creevey_dask.__file__).parent

#: Lowest first. A module's layer is the one of its longest listed prefix.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "base",
        [
            "exceptions",
            "_redact",
            "_fork",
            "_dask_types",
            "_keywords",
            "_lazy",
            "schema",
            "options",
            "engine.rows",
            "engine.progress",
            "engine.interrupt",
            "engine.inputs",
            "engine.summary",
            "engine.processes",
        ],
    ),
    ("storage", ["storage"]),
    ("sources", ["sources", "http"]),
    ("image", ["image"]),
    ("ops", ["ops"]),
    (
        "engine",
        [
            "engine.scheduling",
            "engine.outputs",
            "engine.partition",
            "engine.runner",
            "sinks",
            "engine.pipeline",
            "engine",
        ],
    ),
    ("tasks", ["download", "resize", "duplicates"]),
    ("layouts and datasets", ["layout", "reports", "datasets"]),
    ("the original creevey", ["original"]),
    ("entry points", ["accessor", "cli", "cluster", "testing", "", "__main__"]),
]
ENTRY = "entry points"
#: Within the engine layer, the order of its modules (the runner knows no sink or pipeline;
#: where a run executes knows nothing of the rows it runs).
ORDER_WITHIN = {
    "engine.scheduling": 0,
    "engine.outputs": 1,
    "engine.partition": 2,
    "engine.runner": 3,
    "sinks": 4,
    "engine.pipeline": 5,
    "engine": 6,
}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int
    local: bool
    names: tuple[str, ...]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _edges(module: str) -> list[Edge]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    annotations_only: set[int] = set()
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            annotations_only |= {id(n) for n in ast.walk(node)}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {id(n) for n in ast.walk(node) if n is not node}
    base = module.split(".") if module else []
    if path.name != "__init__.py":
        base = base[:-1]
    edges = []
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        local = id(node) in in_function
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - (node.level - 1)]
                target = ".".join([*parent, *([node.module] if node.module else [])])
            elif node.module and (node.module + ".").startswith("creevey_dask."):
                target = node.module.removeprefix("creevey_dask").lstrip(".")
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}".lstrip(".")
                if full in MODULES:  # ``from . import storage``: the submodule itself
                    edges.append(Edge(module, full, node.lineno, local, ()))
                else:
                    edges.append(Edge(module, target, node.lineno, local, (alias.name,)))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("creevey_dask."):
                    target = alias.name.removeprefix("creevey_dask.")
                    edges.append(Edge(module, target, node.lineno, local, ()))
    return [e for e in edges if e.imported != module]


def _layer(module: str) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None
    for rank, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix), name)
    if best is None:
        raise AssertionError(f"creevey_dask.{module} is in no layer: add it to LAYERS")
    return best[0], best[2]


def _within(module: str) -> int:
    for prefix, rank in sorted(ORDER_WITHIN.items(), key=lambda kv: -len(kv[0])):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return 0


ALL_EDGES = [edge for module in MODULES for edge in _edges(module)]


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_module_imports_a_higher_layer() -> None:
    broken = []
    for e in ALL_EDGES:
        (low, low_name), (high, high_name) = _layer(e.imported), _layer(e.importer)
        if low > high or (low == high and _within(e.imported) > _within(e.importer)):
            broken.append(
                f"creevey_dask.{e.importer}:{e.line} ({high_name}) imports "
                f"creevey_dask.{e.imported} ({low_name})"
            )
    assert broken == []


@pytest.mark.parametrize("leaf", ["schema", "engine.rows", "_redact", "_fork", "_dask_types"])
def test_leaf_modules_import_nothing_of_ours(leaf: str) -> None:
    assert [e.imported for e in ALL_EDGES if e.importer == leaf] == []


def test_function_local_imports_only_in_the_entry_points() -> None:
    local = [
        f"creevey_dask.{e.importer}:{e.line} imports creevey_dask.{e.imported} in a function"
        for e in ALL_EDGES
        if e.local and _layer(e.importer)[1] != ENTRY
    ]
    assert local == []


def test_the_import_graph_has_no_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in ALL_EDGES:
        if e.imported in graph:
            graph[e.importer].add(e.imported)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert cycles == []


def test_private_names_stay_in_their_module() -> None:
    """``from .x import _name`` across modules: a rule that belongs to two modules."""
    crossing = [
        f"creevey_dask.{e.importer}:{e.line} takes {name} from creevey_dask.{e.imported}"
        for e in ALL_EDGES
        for name in e.names
        if name.startswith("_")
        and not name.startswith("__")
        # a package and its own private modules (sources/http/_fetch ...) are one unit
        and not e.imported.startswith(e.importer.rpartition(".")[0] + "._")
        and not e.imported.rpartition(".")[2].startswith("_")
    ]
    assert crossing == []


def test_no_module_reaches_into_another_modules_private_names() -> None:
    """``storage._x(...)``: the attribute spelling of the same crossing."""
    reaching = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_lines = {e.line for e in ALL_EDGES if e.importer == module and not e.names}
        aliases = {
            alias.asname or alias.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.level and n.lineno in module_lines
            for alias in n.names
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                reaching.append(f"creevey_dask.{module}:{node.lineno} uses {ast.unparse(node)}")
    assert reaching == []


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("storage.fs", "engine.runner", False),
        ("engine.runner", "engine.pipeline", False),
        ("engine.runner", "sinks.shards", False),
        ("engine.runner", "engine.partition", True),
        ("engine.partition", "engine.runner", False),
        ("engine.scheduling", "engine.outputs", False),
        ("engine.partition", "sinks.shards", False),
        ("sinks.shards", "engine.runner", True),
        ("datasets.url_list", "download", True),
        ("download", "layout.split", False),
        ("accessor", "download", True),
        ("engine.rows", "storage.fs", False),
    ],
)
def test_the_rule_itself(importer: str, imported: str, allowed: bool) -> None:
    (low, _), (high, _) = _layer(imported), _layer(importer)
    ok = low < high or (low == high and _within(imported) <= _within(importer))
    assert ok is allowed
