"""The package's shape: imports run one way, the core is pure, no circles, no hidden imports.

Read from the source (AST), so a violation fails here whether or not a test happens to import
the module. ``if TYPE_CHECKING:`` imports are annotations only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"sagemaker_vision": ROOT / "plugins" / "sagemaker_vision", "local_aws": ROOT / "local_aws"}

# Layers, lowest first: a module may import its own layer or a lower one, never a higher one.
LAYERS = {
    "core": 0,
    "hooks": 1, "waiters": 1,
    "triggers": 2, "links": 2,
    "operators": 3, "sensors": 3,
    "pipeline": 4,
    "dags": 5,
    "plugin": 6,
}
LAYERED = "sagemaker_vision"
# A function-level import must say why on its line or the line above (it keeps DAG parsing fast,
# or a trigger's run() loads its client in the triggerer only).
LAZY_MARK = "# lazy:"
# Modules over this many lines must be listed, with the one responsibility that makes them long.
MAX_LINES = 500
LONG_MODULES: dict[str, str] = {
    "local_aws.labeling": "the emulated Ground Truth labeling job: its checks, timeline and output manifest",
    "local_aws.strict": "the request rules moto does not enforce, one table of documented AWS limits",
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (resolved to a module of the package, not a name in it)
    line: int
    lazy: bool  # inside a function
    marked: bool  # carries the LAZY_MARK comment


def module_name(path: Path) -> str:
    for package, root in PACKAGES.items():
        if path.is_relative_to(root):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([package, *parts])
    raise AssertionError(path)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for root in PACKAGES.values() for p in sorted(root.rglob("*.py"))}


MODULES = all_modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _walk(other, in_function)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        yield from _walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))


def _resolve(source: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The package modules ``node`` loads (``from pkg import mod`` loads pkg.mod when it is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                yield name
        return
    if node.level:
        base = source.split(".")
        if path.name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if prefix.split(".")[0] not in PACKAGES:
        return
    for alias in node.names:
        candidate = f"{prefix}.{alias.name}"
        yield candidate if candidate in MODULES else prefix


def imports() -> list[Import]:
    found: list[Import] = []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node, lazy in _walk(ast.parse(text, str(path)), False):
            marked = any(LAZY_MARK in lines[i] for i in (node.lineno - 1, node.lineno - 2) if 0 <= i < len(lines))
            for target in _resolve(name, path, node):
                if target != name:
                    found.append(Import(name, target, node.lineno, lazy, marked))
    return found


def third_party(path: Path) -> set[str]:
    """Top-level names of everything ``path`` imports at run time (TYPE_CHECKING excluded)."""
    names: set[str] = set()
    for node, _lazy in _walk(ast.parse(path.read_text(encoding="utf-8")), False):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != LAYERED or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def test_the_cycle_finder_finds_a_cycle_and_passes_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_no_import_circles_anywhere():
    edges: dict[str, set[str]] = {}
    for imp in imports():
        edges.setdefault(imp.source, set()).add(imp.target)
    assert cycles(edges) == []


def test_every_module_lives_in_a_layer():
    loose = [m for m in MODULES if m.startswith(LAYERED + ".") and layer(m) is None]
    assert loose == [], "modules outside core/hooks/waiters/triggers/links/operators/sensors/pipeline/plugin"


def test_imports_run_one_way_from_pipeline_down_to_core():
    upward = []
    for imp in imports():
        source, target = layer(imp.source), layer(imp.target)
        if source is not None and target is not None and target > source:
            upward.append(f"{MODULES[imp.source].relative_to(ROOT)}:{imp.line} {imp.source} -> {imp.target}")
    assert upward == []


def test_the_core_imports_no_airflow_and_nothing_above_it():
    bad = []
    for name, path in MODULES.items():
        if layer(name) != LAYERS["core"]:
            continue
        if "airflow" in third_party(path):
            bad.append(f"{path.relative_to(ROOT)} imports airflow")
    assert bad == []


def test_the_core_imports_no_airflow_when_loaded():
    core = sorted(m for m in MODULES if layer(m) == LAYERS["core"])
    assert core, "no core modules found"
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(ROOT / 'plugins')!r}, {str(ROOT)!r}]\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(loaded[:5])\n"
        "raise SystemExit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_function_level_import_says_why():
    hidden = [f"{MODULES[i.source].relative_to(ROOT)}:{i.line} {i.target}"
              for i in imports() if i.lazy and not i.marked]
    assert hidden == [], f"mark each with a {LAZY_MARK!r} comment saying why, or import at module level"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_long_module_holds_one_named_responsibility(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    if lines > MAX_LINES:
        assert name in LONG_MODULES, f"{name} has {lines} lines: split it, or list its one responsibility"
