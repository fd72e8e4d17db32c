"""Shared fixtures (the session's Prefect server, a finished quickstart, cell configs composed from conf/
with Hydra's compose API) and how the suite runs: two workers, `exclusive` tests beside no `slow` one."""

import fcntl
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from composing import compose_config
from xdist.scheduler import LoadFileScheduling

sys.path.insert(0, str(Path(__file__).resolve().parent / "flows"))  # sweep_cli, for tests outside flows/


@dataclass(frozen=True)
class SessionServer:
    """The session's Prefect database (a PREFECT_HOME of its own) and the one server on it."""

    home: Path
    url: str


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionServer]:
    """One Prefect server for the whole session, outside the user's ~/.prefect: the shared server its
    sweeps find (server/shared.py, in a runtime folder beside the database: tests/flows/sweep_cli.py),
    started here once and leased until the session ends, so that no sweep waits for one to boot and no
    pause between tests lets it go idle; in-process flow runs use it too (tests/flows/conftest.py).
    Tests that need a database or a server of their own (PostgreSQL, the shared server's own rules, a
    private server, the browser's UI) start theirs."""
    from sweep_cli import sweep_env

    import cli.main  # noqa: F401 - sets the Prefect variables every sweep sets first (the server's key has them)
    from server.private import SharedServer, _shared

    home = tmp_path_factory.mktemp("prefect-home")
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(sweep_env(home))  # the server's key and environment are the sweeps'
    try:
        server = _shared()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert isinstance(server, SharedServer), "no shared Prefect server for the session's sweeps"
    server.wait_ready(timeout_s=600)  # generous: a loaded 2-core machine
    try:
        yield SessionServer(home=home, url=server.url)
    finally:
        server.stop(idle_wait_s=0)  # it exits FEDSWEEP_SERVER_IDLE_S after the last sweep's lease


@pytest.fixture(scope="session")
def prefect_home(prefect_server: SessionServer) -> Path:
    """The session's Prefect database (PREFECT_HOME), with its server up (`prefect_server`)."""
    return prefect_server.home


@pytest.fixture(scope="session")
def quickstart_sweep(tmp_path_factory: pytest.TempPathFactory, prefect_home: Path) -> tuple[Path, str]:
    """(folder, output) of one finished run of sweep_cli.QUICKSTART, shared by the tests that read a
    finished sweep (its records, its UIs, its weights); none may run anything more in that folder."""
    from sweep_cli import QUICKSTART, run_sweep

    cwd = tmp_path_factory.mktemp("quickstart")
    return cwd, run_sweep(cwd, prefect_home, *QUICKSTART)


@pytest.fixture
def cell_config() -> Callable[..., dict[str, Any]]:
    """`cell_config("rounds=2", ...)` -> a resolved cell config (tiny synthetic defaults)."""

    def make(*overrides: str) -> dict[str, Any]:
        return compose_config(["num_clients=4", "clients_per_round=2", "batch_size=16", *overrides])

    return make


@pytest.fixture
def make_cell(tmp_path) -> Callable[..., Any]:
    """`make_cell(config)` -> the `Cell` of a cell folder written for `config` under tmp_path."""
    from fedsweep.cell.cell import open_cell
    from fedsweep.cell.layout import write_cell_config
    from fedsweep.grid import cell_key

    def make(config: dict[str, Any], where: str = "cell") -> Any:
        cell_dir = str(tmp_path / where)
        write_cell_config(cell_dir, key=cell_key(config), name=where, config=config)
        return open_cell(cell_dir)

    return make


# The files that take longest (`pytest --durations=0`, two workers, 2026-12-05: 75 to 160 s each),
# longest first.
LONGEST_FIRST = (
    "tests/flows/test_repro_reduced_fmnist.py",
    "tests/test_benchmarks.py",
    "tests/flows/test_dask_cluster.py",
    "tests/flows/test_repro_reduced.py",
)
# The files with `exclusive` tests: one unit of work for the scheduler, which sees node ids, not marks.
EXCLUSIVE_FILES = ("tests/flows/test_browser.py", "tests/flows/test_round_deadline.py")


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The order the workers take the files in (`--no-loadscope-reorder` keeps it; each worker takes
    a whole file at a time): first EXCLUSIVE_FILES, their `exclusive` tests first, one unit of work
    (`pytest_xdist_make_scheduler`), then LONGEST_FIRST, then the other files with `slow` tests, then
    the rest, each group in collection order, so that no worker is left alone with a long file at the
    end. (xdist's own order, most tests first, put the long files last: one worker idled ~90 s.)"""
    files = {_file(item.nodeid) for item in items}
    exclusive = {_file(i.nodeid) for i in items if i.get_closest_marker("exclusive")}
    slow = {_file(item.nodeid) for item in items if item.get_closest_marker("slow")}
    whole = config.args == ["tests"] or config.args == [str(config.rootpath / "tests")]  # the suite
    missing = [f for f in (*LONGEST_FIRST, *EXCLUSIVE_FILES) if f not in files]
    if whole and (missing or exclusive != set(EXCLUSIVE_FILES)):
        raise pytest.UsageError(
            f"tests/conftest.py: LONGEST_FIRST or EXCLUSIVE_FILES name files the suite lacks ({missing}), or "
            f"EXCLUSIVE_FILES are not the files with exclusive tests ({sorted(exclusive)})"
        )

    def rank(item: pytest.Item) -> tuple[int, int, bool]:
        file = _file(item.nodeid)
        if file in EXCLUSIVE_FILES:
            return (0, EXCLUSIVE_FILES.index(file), item.get_closest_marker("exclusive") is None)
        if file in LONGEST_FIRST:
            return (1, LONGEST_FIRST.index(file), False)
        return (2 if file in slow else 3, 0, False)

    items.sort(key=rank)  # stable: collection order within each group and file


class ExclusiveFirst(LoadFileScheduling):
    """`--dist loadfile`, but EXCLUSIVE_FILES are one unit, so that one worker runs the exclusive tests
    one after another; while it does, the other takes its files from the end of the queue: files
    without `slow` tests, which run beside an exclusive one (`pytest_runtest_protocol`)."""

    def _split_scope(self, nodeid: str) -> str:
        file = _file(nodeid)
        return EXCLUSIVE_FILES[0] if file in EXCLUSIVE_FILES else file

    def _assign_work_unit(self, node: Any) -> None:
        unit = EXCLUSIVE_FILES[0]
        elsewhere = any(
            not all(work[unit].values())
            for other, work in self.assigned_work.items()
            if other is not node and unit in work
        )
        if elsewhere:
            self.workqueue.move_to_end(next(reversed(self.workqueue)), last=False)
        super()._assign_work_unit(node)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ExclusiveFirst:
    return ExclusiveFirst(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A test marked `exclusive` (it bounds wall-clock seconds: a round's deadline, a page's load)
    runs while no other worker runs a `slow` test (a sweep, a server, a cluster); tests that are not
    slow (in-process, seconds) run beside it, and slow ones two at a time.
    A readers-writer lock shared by the run's workers (file locks), fair to the exclusive test: once
    it waits, no new slow test starts. Its fixtures' set-up and tear-down are inside the lock too."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
    exclusive = item.get_closest_marker("exclusive") is not None
    if run is None or not (exclusive or item.get_closest_marker("slow")):  # `-n 0`, or a light test
        return (yield)
    folder = Path(tempfile.gettempdir())
    with (
        open(folder / f"fedsweep-tests-{run}.gate", "a") as gate,
        open(folder / f"fedsweep-tests-{run}.run", "a") as lock,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)  # in line: a waiting exclusive test holds the gate
        if not exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
