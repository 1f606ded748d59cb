"""The package's shape: no import cycle inside it, and a neutral formulations package."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("solver", "formulations")


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Module -> modules of the packages it imports, at module level or inside functions (a package's
    ``__init__`` counts as what it names; ``from pkg import mod`` as ``pkg.mod``)."""
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_inside_the_packages():
    graph = _imports()
    # the lazy top-level package names every public module by string only: it imports none of them
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_import_formulations_loads_no_catalog_scenario_or_yaml():
    code = (
        "import sys, formulations; "
        "bad = [m for m in sys.modules if m in ('yaml', 'solver.data.catalog', 'solver.data.scenario') "
        "or m.startswith(('solver.data', 'solver.performance', 'solver.planning', 'solver.backends', "
        "'solver.apps', 'ortools', 'pulp'))]; "
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import formulations loaded: {out.stdout.strip()}"


def test_importtime_shows_the_same():
    """``python -X importtime -c "import formulations"``, as the issue states the check."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import formulations"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "formulations" in loaded
    assert not loaded & {"yaml", "solver.data.catalog", "solver.data.scenario"}, sorted(loaded)


def test_formulations_import_only_neutral_specs_from_solver():
    graph = _imports()
    for mod, deps in graph.items():
        if mod.startswith("formulations"):
            outside = {d for d in deps if d.startswith("solver")}
            assert outside <= {"solver", "solver.specs", "solver.errors", "solver.tolerances"}, (mod, outside)
