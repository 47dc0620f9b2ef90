"""The shape of the core: imports run one way (no cycle between modules or packages), modules
stay readable in size, every package says what it holds, and the core never needs Blender.

The import graph is read from the source (``ast``), function-level imports included: a cycle
hidden inside a function is still a cycle for a reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"

#: Longest module, in lines: one idea per module (the issue "core as packages" asked ~500).
MAX_LINES = 520


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The core modules ``name`` imports, anywhere in it except ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _package(module: str) -> str:
    """core.surface.build -> surface; core.errors -> errors; core -> core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "core"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_modules():
    graph = _graph()
    # `core/__init__.py` hands out Pipeline lazily; its own imports are the public API
    graph.pop("core", None)
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_packages_import_one_way():
    """Between packages too: pure geometry at the bottom, the shells (cli, worker) on top."""
    graph: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        if module == "core" or module.endswith("__main__"):  # the entry points themselves
            continue
        here = _package(module)
        graph.setdefault(here, set()).update(
            _package(t) for t in targets if _package(t) not in (here, "core")
        )
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])
    # the layers a reader can rely on
    assert graph["geometry"] <= {"errors"}
    assert not graph.get("errors") and not graph.get("protocol")
    for shell in ("cli", "worker"):
        assert not any(shell in deps for pkg, deps in graph.items() if pkg != shell), shell


def test_the_oracle_is_for_tests_and_benchmarks_only():
    users = {m for m, targets in _graph().items() for t in targets if _package(t) == "oracle"}
    assert {_package(m) for m in users} <= {"oracle"}, sorted(users)


def test_this_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    """The checks above would see the kind of cycle the flat core had (cli <-> cluster)."""
    graph = {"core.cli.main": {"core.runs.cluster"}, "core.runs.cluster": {"core.cli.main"}}
    assert _cycle(graph) == ["core.cli.main", "core.runs.cluster", "core.cli.main"]
    (tmp_path / "a.py").write_text("def f():\n    from .b import g\n")
    assert _imports("pkg.a", tmp_path / "a.py", {"pkg.a", "pkg.b"}) == {"pkg.b"}


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_stay_readable(name):
    path = _modules()[name]
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(CORE.parent)} has {lines} lines"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{name} does not say what it holds"
    if path.name == "__init__.py" and name != "core":
        assert "\n" not in doc.strip(), f"{name}: one line says what the package holds"


def test_the_core_never_imports_blender():
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                assert not any(n.split(".")[0] == "bpy" for n in names), name
