"""The house's import rules (docs/architecture.md §3), read from the code's own imports (AST):
no circle between modules, each package imports only the rooms below it, and no module, test
or benchmark reaches another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aoi", "indices", "pipelines", "redline", "maps")
#: folders of scripts that use the packages: held to the packages' public names too
USERS = ("tests", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _from_module(name: str, is_pkg: bool, node: ast.ImportFrom, absolute=lambda m: m) -> str:
    """The module a ``from … import`` in module ``name`` reads (relative imports resolved)."""
    if not node.level:
        return absolute(node.module or "")
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (anywhere in the file, lazy imports included)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _from_module(name, is_pkg, node)
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
        # it renders OUT, reads the register through its API and takes the codes' labels from the vocabulary
        "maps": {"maps", "redline.register", "redline.vocabulary"},
    }
    for mod, targets in graph.items():
        pkg = mod.split(".")[0]
        if pkg in allowed:
            bad = {t for t in targets if not any(t == a or t.startswith(a + ".") for a in allowed[pkg])}
            assert not bad, f"{mod} imports {sorted(bad)}"


def test_the_review_service_imports_the_register_and_only_the_cli_imports_it():
    """``redline.serve`` (the web pages) reads and writes the register through its API and takes
    its words from the vocabulary; nothing of the house but the command line starts it
    (docs/architecture.md §3)."""
    graph = _graph()
    allowed = ("redline.serve", "redline.register", "redline.vocabulary", "redline.outputs", "redline.geojson", "redline.errors")
    serve = {m for m in graph if m == "redline.serve" or m.startswith("redline.serve.")}
    assert serve, "redline.serve is missing"
    for mod in serve:
        bad = {t for t in graph[mod] if not any(t == a or t.startswith(a + ".") for a in allowed)}
        assert not bad, f"{mod} imports {sorted(bad)}"
    users = {m for m, targets in graph.items() if m not in serve and any(t in serve for t in targets)}
    assert users == {"redline.cli"}, sorted(users)


def test_the_science_modules_do_not_import_the_run_or_the_cli():
    graph = _graph()
    orchestration = ("redline.run", "redline.scan", "redline.cli")
    for mod, targets in graph.items():
        if mod.startswith(("redline.run", "redline.scan", "redline.cli", "redline.demo")) or not mod.startswith("redline"):
            continue
        bad = {t for t in targets if t.startswith(orchestration)}
        assert not bad, f"{mod} imports {sorted(bad)}"


def test_the_vocabulary_the_output_names_and_the_errors_are_leaves():
    """The command line reads them at start-up: they must not pull in the science."""
    graph = _graph()
    for leaf in ("redline.vocabulary", "redline.outputs", "redline.errors"):
        assert graph[leaf] == set(), (leaf, graph[leaf])


def test_the_public_api_resolves_and_the_package_stays_light():
    import subprocess
    import sys

    import redline

    for name in redline.__all__:
        assert getattr(redline, name).__name__ == name
    # importing the package (as the command line does first) loads none of the science
    code = "import sys, redline, redline.cli; print(sorted(m for m in ('xarray', 'geopandas', 'dask', 'redline.scan') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


# ---------------------------------------------------------------------------------------------
# public names are the API: nothing reaches another module's ``_private`` names


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _all_modules() -> dict[str, Path]:
    """The packages' modules and the tests' and benchmarks' (``tests.test_maps``, ``benchmarks.memory``)."""
    return _modules() | {_module_name(p): p for folder in USERS for p in (ROOT / folder).rglob("*.py")}


def _references(name: str, path: Path) -> set[str]:
    """Dotted names of the project that module ``name`` reaches: what it imports
    (``from a._b import c`` → ``a._b.c``, ``import a._b`` → ``a._b``), the attributes it reads of
    what it imported (``import pipelines`` … ``pipelines._load.f`` → ``pipelines._load.f``;
    ``from redline.demo import build as B`` … ``B.rng`` → ``redline.demo.build.rng``) and the names
    it patches or looks up by string (``monkeypatch.setattr(mod, "_f", …)``,
    ``setattr("a._b.f", …)``)."""
    roots = (*PACKAGES, *USERS)
    is_pkg = path.name == "__init__.py"
    here = _module_name(path.parent) if path.parent.is_relative_to(ROOT) and path.parent != ROOT else ""

    def absolute(mod: str) -> str:
        # a script's sibling imported by bare name (benchmarks: ``import _bench``)
        first = mod.split(".")[0]
        if first not in roots and here and ((path.parent / f"{first}.py").exists() or (path.parent / first / "__init__.py").exists()):
            return f"{here}.{mod}"
        return mod

    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound: dict[str, str] = {}  # local name → the dotted project name it stands for
    refs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                mod = absolute(a.name)
                refs.add(mod)
                if a.asname:
                    bound[a.asname] = mod
                else:
                    bound[a.name.split(".")[0]] = mod.split(".")[0] if mod == a.name else mod.rsplit(".", a.name.count("."))[0]
        elif isinstance(node, ast.ImportFrom):
            mod = _from_module(name, is_pkg, node, absolute)
            if any(a.name == "*" for a in node.names):
                refs.add(mod)
            for a in node.names:
                if a.name != "*":
                    refs.add(f"{mod}.{a.name}")
                    bound[a.asname or a.name] = f"{mod}.{a.name}"

    def dotted(expr: ast.expr) -> str | None:
        attrs = []
        while isinstance(expr, ast.Attribute):
            attrs.append(expr.attr)
            expr = expr.value
        if isinstance(expr, ast.Name) and expr.id in bound:
            return ".".join([bound[expr.id], *reversed(attrs)])
        return None

    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}  # ``a.b`` of ``a.b.c``
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if id(node) in inner:
                continue
            ref = dotted(node)
            if ref:
                refs.add(ref)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func not in ("setattr", "getattr", "delattr", "hasattr"):
                continue
            first, second = node.args[0], node.args[1] if len(node.args) > 1 else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and "." in first.value:
                refs.add(first.value)  # monkeypatch.setattr("pkg.mod.name", value)
            elif isinstance(second, ast.Constant) and isinstance(second.value, str):
                base = dotted(first)
                if base:
                    refs.add(f"{base}.{second.value}")
    return {r for r in refs if r.split(".")[0] in roots}


def _crossings(importer: str, ref: str, known: set[str]) -> list[str]:
    """The private parts of ``ref`` that ``importer`` may not use: a ``_module`` outside its own
    package, or a ``_name`` of any other module."""
    parts = ref.split(".")
    bad = []
    for i in range(1, len(parts)):
        if not _private(parts[i]):
            continue
        owner, target = ".".join(parts[:i]), ".".join(parts[: i + 1])
        if target in known:  # a private module: for the modules of its own package
            ok = importer == owner or importer.startswith(owner + ".")
        else:  # a private name: for its own module only
            ok = importer == owner
        if not ok:
            bad.append(target)
    return bad


#: the private names still used across modules, each with its reason; nothing else may be added
ALLOWED_PRIVATE: set[tuple[str, str]] = set()


def test_no_module_test_or_benchmark_uses_another_modules_private_names():
    """Public names are the API (issue #21): a ``_private`` module is for its own package, a
    ``_private`` name for its own module; tests and benchmarks use public names only (their own
    helper modules, ``tests/_reference.py`` and ``benchmarks/_bench.py``, are theirs)."""
    mods = _all_modules()
    known = set(mods)
    found = set()
    for name, path in mods.items():
        for ref in _references(name, path):
            if _crossings(name, ref, known):
                found.add((name, ref))
    assert found - ALLOWED_PRIVATE == set(), sorted(found - ALLOWED_PRIVATE)
    assert ALLOWED_PRIVATE - found == set(), f"no longer used, drop from ALLOWED_PRIVATE: {sorted(ALLOWED_PRIVATE - found)}"


def test_the_private_name_check_sees_each_way_in(tmp_path):
    """The check above on a made-up module: each way of reaching a private name is seen."""
    known = {"pipelines", "pipelines._load", "pipelines._native", "redline.demo", "redline.demo._build"}
    src = tmp_path / "t.py"
    src.write_text(
        "import pipelines\n"
        "import pipelines._native as nat\n"
        "from pipelines._load import local_href_patch, _even\n"
        "from redline.demo import _build as B\n"
        "pipelines._load.solar_day\n"
        "B.rng\n"
        "monkeypatch.setattr(pipelines, '_thing', 1)\n"
        "monkeypatch.setattr('pipelines._load.trim', 1)\n"
        "import numpy as np\nnp._x\n",
        encoding="utf-8",
    )
    got = {(r, tuple(_crossings("tests.t", r, known))) for r in _references("tests.t", src)}
    bad = {r for r, c in got if c}
    assert bad == {"pipelines._native", "pipelines._load.local_href_patch", "pipelines._load._even",
                   "redline.demo._build", "redline.demo._build.rng", "pipelines._load.solar_day", "pipelines._thing",
                   "pipelines._load.trim"}, sorted(bad)
    # a package's own modules may use its private modules, not its modules' private names
    assert _crossings("pipelines._probe", "pipelines._load.asset_for", known) == []
    assert _crossings("pipelines._probe", "pipelines._load._asset_for", known) == ["pipelines._load._asset_for"]
    assert _crossings("pipelines._load", "pipelines._load._asset_for", known) == []
