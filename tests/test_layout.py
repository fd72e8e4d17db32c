"""The layout's rules, read from the source: the library stands alone, the round loop holds no
tensors, and no module imports itself through others."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fedsweep", "flows", "tasks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Modules `path` imports at any depth of its code (a deferred import counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {name: {m for m in imports(path) if m in files} for name, path in files.items()}


# The execution seam's Dask backend is where the engine plugs in (DESIGN: execution/ runs jobs "in this
# thread, the local worker processes, a Dask cluster"); no other library module may know of Dask.
ENGINE_BACKENDS = {Path("fedsweep/execution/dask.py"): {"dask", "distributed"}}


def test_the_library_never_imports_the_orchestration_stack() -> None:
    for path in (ROOT / "fedsweep").rglob("*.py"):
        allowed = ENGINE_BACKENDS.get(path.relative_to(ROOT), set())
        forbidden = {"prefect", "mlflow", "dask", "distributed", "flows", "tasks"} - allowed
        bad = {m for m in imports(path) if m.split(".")[0] in forbidden}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_round_loop_imports_no_tensor_code() -> None:
    tensor_modules = {
        "torch",
        "numpy",
        "safetensors",
        "fedsweep.steps",
        "fedsweep.weights",
        "fedsweep.train",
        "fedsweep.strategies",
        "fedsweep.selection",
    }
    used = imports(ROOT / "flows" / "experiment.py")
    bad = {m for m in used if any(m == t or m.startswith(t + ".") for t in tensor_modules)}
    assert not bad, f"flows/experiment.py imports {sorted(bad)}"


def test_no_import_cycles() -> None:
    graph = project_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_cycle_check_can_fail(monkeypatch) -> None:
    graph = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setattr(f"{__name__}.project_graph", lambda: graph)
    with pytest.raises(pytest.fail.Exception, match="a -> b -> a"):
        test_no_import_cycles()
