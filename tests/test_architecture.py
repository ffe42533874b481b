"""The house's import rules (docs/architecture.md §3), read from the code's own imports (AST):
no circle between modules, and each package imports only the rooms below it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aoi", "indices", "pipelines", "redline", "maps")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (anywhere in the file, lazy imports included)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            # the longest known module the import names (``from redline import assess`` → redline.assess)
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_back_through_others():
    graph = _graph()
    # a package __init__ importing its submodules, and a submodule importing a sibling, is fine;
    # a circle between two modules of the house is not
    inits = {m for m, p in _modules().items() if p.name == "__init__.py"}
    edges = {m: {t for t in ts if not (t in inits and m.startswith(t + "."))} for m, ts in graph.items()}
    assert _cycles(edges) == []


def test_each_package_imports_only_the_rooms_below_it():
    graph = _graph()
    allowed = {
        "indices": {"indices"},
        "aoi": {"aoi", "redline.errors"},
        "pipelines": {"pipelines", "indices", "redline.errors"},
        "maps": {"maps"},
    }
    for mod, targets in graph.items():
        pkg = mod.split(".")[0]
        if pkg in allowed:
            bad = {t for t in targets if not any(t == a or t.startswith(a + ".") for a in allowed[pkg])}
            assert not bad, f"{mod} imports {sorted(bad)}"


def test_the_science_modules_do_not_import_the_run_or_the_cli():
    graph = _graph()
    orchestration = ("redline.run", "redline.scan", "redline.cli")
    for mod, targets in graph.items():
        if mod.startswith(("redline.run", "redline.scan", "redline.cli", "redline.demo")) or not mod.startswith("redline"):
            continue
        bad = {t for t in targets if t.startswith(orchestration)}
        assert not bad, f"{mod} imports {sorted(bad)}"
