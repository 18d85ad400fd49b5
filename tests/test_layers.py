"""The package layering: no import runs back up (see the layout section of README.md).

Read from the source with ``ast`` (function-level and ``TYPE_CHECKING`` imports
included), so a lazy import is held to the same rule as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "colja"

#: bottom to top; a module may import its own layer's other packages only where listed in SIBLINGS
LAYERS: list[set[str]] = [
    {"colja.errors", "colja._atomic", "colja._lazy", "colja._progress", "colja._validation", "colja._jsonl",
     "colja._version", "colja._device", "colja._hub", "colja._warnings", "colja._allocator"},
    {"colja.kernels", "colja.text"},
    {"colja.model", "colja.firststage"},
    {"colja.index"},
    {"colja.search"},
    {"colja.searchable"},
    {"colja.eval", "colja.train", "colja.commands", "colja.cli", "colja.server", "colja.integrations",
     "colja.distributed", "colja"},
]
#: allowed imports between different packages of one layer
SIBLINGS = {("colja._hub", "colja.errors"), ("colja.train", "colja.eval"), ("colja.commands", "colja.eval"), ("colja.commands", "colja.train"),
            ("colja.cli", "colja.commands"), ("colja.commands", "colja"), ("colja.eval", "colja"),
            ("colja.train", "colja"), ("colja.cli", "colja"), ("colja.integrations", "colja"),
            ("colja.server", "colja"), ("colja.distributed", "colja"), ("colja.integrations", "colja.server"),
            ("colja.commands", "colja.server"), ("colja.commands", "colja.distributed"),
            ("colja.server", "colja.distributed"), ("colja.distributed", "colja.server")}


def _unit(module: str) -> str:
    """The layered unit a module belongs to: its package under ``colja`` (or the module for top-level files)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else "colja"


def _layer(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"{unit} is in no layer: add it to LAYERS in tests/test_layers.py")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every colja import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "colja"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "colja":
            if node.module == "colja":  # from colja import kernels -> colja.kernels; from colja import Index -> colja
                for alias in node.names:
                    sub = PACKAGE / alias.name
                    is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                    found.append((node.lineno, f"colja.{alias.name}" if is_module else "colja"))
            else:
                found.append((node.lineno, node.module))
    return found


def _all_edges() -> list[tuple[str, int, str, str]]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for line, target in _imports(path):
            edges.append((f"{path.relative_to(PACKAGE.parent)}:{line}", module, target, _unit(target)))
    return edges


def test_every_package_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        _layer(_unit(_module_name(path)))


def test_no_import_runs_back_up():
    wrong = []
    for where, module, target, unit in _all_edges():
        mine = _unit(module)
        if unit == mine:
            continue
        a, b = _layer(mine), _layer(unit)
        if b > a or (b == a and (mine, unit) not in SIBLINGS):
            wrong.append(f"{where}: {module} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


@pytest.mark.parametrize("low, high", [("colja.model", "colja.search"), ("colja.index", "colja.search"),
                                       ("colja.index", "colja.searchable"), ("colja.model", "colja.index"),
                                       ("colja.kernels", "colja.model")])
def test_named_rules(low, high):
    """The rules the README states in words."""
    bad = [f"{w}: {m} imports {t}" for w, m, t, u in _all_edges() if _unit(m) == low and u == high]
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for _, module, _, unit in _all_edges():
        if _unit(module) != unit:
            graph.setdefault(_unit(module), set()).add(unit)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(unit for unit in graph if unit in reach(unit))
    assert not cycles, f"packages in an import cycle: {cycles}"
