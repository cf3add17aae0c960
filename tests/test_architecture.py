"""The import graph of src/streamguard: no module imports itself through others (a cycle), and nothing outside
the command-line package imports it (the CLI sits above every stage). Imports inside functions count: a
deferred import is still a dependency, only a later one."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CLI = "streamguard.cli"
# Known cycles between packages, each to be cut by the work named; the test fails when one is gone (drop it here)
KNOWN_PACKAGE_CYCLES: set[frozenset[str]] = set()
KNOWN_MODULE_CYCLES: set[str] = set()
# The pipeline's order, as packages: each imports only packages on its left (getting data, model input, models,
# training, evaluation, scanning); the CLI sits above all (test_only_the_cli_imports_the_cli)
PIPELINE_ORDER = ["streamguard.data", "streamguard.features", "streamguard.models", "streamguard.train",
                  "streamguard.evaluate", "streamguard.scan"]
Graph = dict[str, set[str]]


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__) of every module of the streamguard package."""
    out = {}
    for f in (SRC / "streamguard").rglob("*.py"):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _targets(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The project modules an import statement loads (``from pkg import mod`` names the module ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:  # relative: from the package of this module, up level-1 packages
            base = module.split(".") if is_pkg else module.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
    out = []
    for name in names:
        while name and name not in known:  # a name inside a module: the module itself
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph() -> Graph:
    mods = _modules()
    graph: Graph = {name: set() for name in mods}
    for name, (path, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= {t for t in _targets(name, is_pkg, node, set(mods)) if t != name}
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan): each is a set of modules that import
    each other, directly or through the others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_module_and_function_level_imports() -> None:
    graph = import_graph()
    assert "streamguard.cli.train" in graph["streamguard.cli"]  # module level, from-package form
    assert "streamguard.train.registry" in graph["streamguard.cli.train"]  # inside a function
    assert "streamguard.data.corpus" in graph["streamguard.pretrain.train"]


def test_no_import_cycles() -> None:
    found = {" <-> ".join(c) for c in cycles(import_graph())}
    assert not found - KNOWN_MODULE_CYCLES, "modules that import each other:\n" + "\n".join(found - KNOWN_MODULE_CYCLES)
    assert not KNOWN_MODULE_CYCLES - found, "a known cycle is gone: drop it from KNOWN_MODULE_CYCLES"


def test_only_the_cli_imports_the_cli() -> None:
    graph = import_graph()
    def in_cli(m: str) -> bool:
        return m == CLI or m.startswith(CLI + ".")
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if in_cli(b) and not in_cli(a))
    assert not upward, "imports of the command line from below it:\n" + "\n".join(upward)


def test_no_cycles_between_the_top_level_packages() -> None:
    """A coarser view: ``data`` importing ``pretrain`` while ``pretrain`` imports ``data`` is a cycle of
    layers even when no two modules import each other."""
    top: Graph = {}
    for a, targets in import_graph().items():
        for b in targets:
            pa, pb = ".".join(a.split(".")[:2]), ".".join(b.split(".")[:2])
            if pa != pb and "streamguard" not in (pa, pb):  # the package's own __init__ is no layer
                top.setdefault(pa, set()).add(pb)
    found = {frozenset(c) for c in cycles(top)}
    assert not found - KNOWN_PACKAGE_CYCLES, "packages that import each other:\n" + "\n".join(
        " <-> ".join(sorted(c)) for c in found - KNOWN_PACKAGE_CYCLES)
    assert not KNOWN_PACKAGE_CYCLES - found, "a known cycle is gone: drop it from KNOWN_PACKAGE_CYCLES"


def test_packages_import_only_earlier_stages() -> None:
    """``data`` (getting data) never imports ``features`` (model input), ``features`` never imports ``train``..."""
    rank = {p: i for i, p in enumerate(PIPELINE_ORDER)}
    def stage(m: str) -> str:
        return ".".join(m.split(".")[:2])
    upward = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                    if stage(a) in rank and stage(b) in rank and rank[stage(b)] > rank[stage(a)])
    assert not upward, "imports of a later pipeline stage:\n" + "\n".join(upward)


def test_no_module_imports_another_modules_private_names() -> None:
    """A leading underscore means "this module's own": what another module needs gets a public name."""
    mods = _modules()
    found = []
    for name, (path, _) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("streamguard"):
                found += [f"{name}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__") and node.module in mods]
    assert not found, found
