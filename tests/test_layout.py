"""The project's structure, read from the source with ast: no import cycles among the modules of core/ and
dashboard/, no private (underscore) names of core/ imported from outside it, and an engine that never imports
Streamlit."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "dashboard")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources(*dirs: str) -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p))
            for d in dirs for p in sorted((ROOT / d).rglob("*.py"))}


def _imports(tree: ast.Module, module: str, known: set[str]) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import in the file, function-level ones included; relative imports
    resolved; ``from pkg import mod`` counted as importing pkg.mod when that is a module."""
    out = []
    package = module if module in known and any(k.startswith(module + ".") for k in known) else \
        module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [a.name for a in node.names]
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
            out.append((base, [n for n in names if f"{base}.{n}" not in known]))
            out += [(m, []) for m in subs]
    return out


def _graph() -> dict[str, set[str]]:
    trees = _sources(*PACKAGES)
    known = set(trees)
    graph = {m: set() for m in trees}
    for m, tree in trees.items():
        for target, _ in _imports(tree, m, known):
            if target in known and target != m:
                graph[m].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_of_core_and_dashboard_has_no_cycle() -> None:
    graph = _graph()
    assert len(graph) > 20 and graph["core.samplers"] >= {"core.diffusion", "core.schedules", "core.guidance"}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_private_name_of_core_is_imported_from_outside_it() -> None:
    trees = _sources("core", "dashboard", "benchmarks", "tests")
    known = set(trees)
    found = []
    for m, tree in trees.items():
        if m.startswith("core.") or m == "core":
            continue
        for target, names in _imports(tree, m, known):
            if target == "core" or target.startswith("core."):
                private = [n for n in names if n.startswith("_")] + \
                    [part for part in target.split(".") if part.startswith("_") and part != "__main__"]
                found += [f"{m}: {target}.{n}" for n in private]
    assert found == []


def test_the_engine_never_imports_streamlit() -> None:
    trees = _sources("core")
    offenders = [m for m, tree in trees.items()
                 for target, _ in _imports(tree, m, set(trees)) if target.split(".")[0] == "streamlit"]
    assert offenders == []
