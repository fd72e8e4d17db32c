"""The layout's rules, read from the source: the library stands alone, storage knows nothing of the
round, only the execution package names an engine, the flows hold no tensors, and no module imports
itself through others."""

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fedsweep", "flows", "tasks", "cli", "server")


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


def modules(*packages: str) -> dict[str, Path]:
    return {module_name(p): p for pkg in packages for p in (ROOT / pkg).rglob("*.py")}


def project_graph() -> dict[str, set[str]]:
    files = modules(*PACKAGES)
    return {name: {m for m in imports(path) if m in files} for name, path in files.items()}


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# An engine's own packages: only its module under fedsweep/execution/ may import them.
ENGINE_BACKENDS = {Path("fedsweep/execution/dask.py"): {"dask", "distributed"}}


def test_the_library_never_imports_the_orchestration_stack() -> None:
    for path in (ROOT / "fedsweep").rglob("*.py"):
        allowed = ENGINE_BACKENDS.get(path.relative_to(ROOT), set())
        forbidden = {"prefect", "mlflow", "dask", "distributed", "flows", "tasks", "cli", "server"} - allowed
        bad = {m for m in imports(path) if m.split(".")[0] in forbidden}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_storage_imports_nothing_of_the_round() -> None:
    round_side = (
        *("fedsweep.rounds", "fedsweep.cell", "fedsweep.jobs", "fedsweep.execution"),
        *("fedsweep.strategies", "fedsweep.selection", "fedsweep.faults", "fedsweep.train"),
    )
    for name, path in modules("fedsweep/checkpoint").items():
        bad = {m for m in imports(path) if within(m, *round_side)}
        assert not bad, f"{name} (storage) imports {sorted(bad)}"


ENGINE_WORDS = re.compile(r"dask|ProcessEngine|ThreadEngine|WorkerPool|InThread", re.IGNORECASE)


def _engine_names(path: Path) -> set[str]:
    """Identifiers in `path`'s code (not its strings or comments) that name an engine."""
    names = set()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.NAME and ENGINE_WORDS.search(token.string):
            names.add(token.string)
    return names


def test_only_the_execution_package_names_an_engine() -> None:
    seam = ("fedsweep.execution", "fedsweep.execution.base")  # the protocol and the registry
    engines = {m for m in modules("fedsweep/execution") if m not in seam}
    for name, path in modules(*PACKAGES).items():
        if within(name, "fedsweep.execution"):
            continue
        bad = {m for m in imports(path) if any(within(m, e) for e in engines)}
        assert not bad, f"{name} imports engine module(s) {sorted(bad)}: go through fedsweep.execution"
        named = _engine_names(path)
        assert not named, f"{name} names an engine in its code: {sorted(named)}"


def test_the_flows_hold_no_tensor_code() -> None:
    tensor_modules = (
        *("torch", "numpy", "safetensors", "fedsweep.weights", "fedsweep.train"),
        *("fedsweep.strategies", "fedsweep.selection"),
        *("fedsweep.rounds.work", "fedsweep.rounds.aggregate", "fedsweep.rounds.evaluate"),
    )
    for name, path in modules("flows").items():
        bad = {m for m in imports(path) if within(m, *tensor_modules)}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_flows_holds_flows_and_what_they_call() -> None:
    """Every flows/ module defines a flow or is imported by one (the entry and the compare alias aside)."""
    graph = project_graph()
    flows = {n for n in graph if n.startswith("flows.")}
    defines = {n for n in flows if "@flow" in modules("flows")[n].read_text()}
    used = {m for n in flows for m in graph[n] if m in flows}
    assert defines, "no module of flows/ defines a flow"
    assert not flows - defines - used - {"flows", "flows.sweep", "flows.compare"}


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


def test_the_engine_check_can_fail(tmp_path, monkeypatch) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from fedsweep.execution.dask import DaskEngine\nengine = DaskEngine()\n")
    assert _engine_names(sneaky) == {"dask", "DaskEngine"}
    assert "fedsweep.execution.dask" in imports(sneaky)
