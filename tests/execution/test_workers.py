"""fedsweep.execution.workers: worker processes that answer calls, survive errors, are replaced when stuck or
dead, and die with their parent."""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from fedsweep.cell.data import data_key, load_data
from fedsweep.execution.processes import install_data, packed_data
from fedsweep.execution.workers import WorkerLost, WorkerPool


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds: float, started: str | None = None) -> int:
    if started:
        Path(started).touch()
    time.sleep(seconds)
    return os.getpid()


def deaf_sleep(seconds: float, started: str | None = None) -> int:
    """A job stuck where no signal reaches it (as in a C call that never returns)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    if started:
        Path(started).touch()
    time.sleep(seconds)
    return os.getpid()


def threads_and_pid() -> tuple[int, int]:
    return torch.get_num_threads(), os.getpid()


SETUP_RUNS: list[str] = []


def remember(token: str) -> None:
    SETUP_RUNS.append(token)


def setups_seen() -> list[str]:
    return list(SETUP_RUNS)


@pytest.fixture(scope="module")
def shared_pool():
    pool = WorkerPool(2, torch_threads=1)
    yield pool
    pool.close()


@pytest.fixture
def pool(shared_pool: WorkerPool) -> WorkerPool:
    """The module's pool of two workers (starting one costs seconds), at full strength: a worker an
    earlier test killed is replaced in the background."""
    assert len(_serving(shared_pool, 2)) == 2
    return shared_pool


def test_calls_are_answered_by_workers_with_their_thread_setting(pool) -> None:
    # Execute
    answers = [pool.call(add, i, 1) for i in range(5)]
    threads, pid = pool.call(threads_and_pid)
    # Assert
    assert answers == [1, 2, 3, 4, 5]
    assert threads == 1 and pid in pool.pids() and pid != os.getpid()


def test_a_workers_exception_is_raised_in_the_caller_and_the_worker_serves_on(pool) -> None:
    # Prepare
    before = sorted(pool.pids())
    # Execute
    with pytest.raises(ValueError, match="boom") as raised:
        pool.call(fail, "boom")
    # Assert: the worker's traceback is attached; no worker was replaced
    assert any("in worker process" in note for note in raised.value.__notes__)
    assert sorted(pool.pids()) == before and pool.call(add, 2, 2) == 4


def test_a_worker_that_dies_raises_worker_lost_and_is_replaced(pool) -> None:
    # Prepare
    before = set(pool.pids())
    # Execute
    with pytest.raises(WorkerLost, match="died"):
        pool.call(die)
    # Assert: one new worker (started in the background), and the pool still answers on both
    after = _serving(pool, 2)
    assert len(after) == 2 and len(after - before) == 1
    assert [pool.call(add, 1, 1) for _ in range(4)] == [2] * 4


def _interrupted_caller(pool: WorkerPool, job, seconds: float, tmp_path: Path) -> tuple[dict, set[int]]:
    """A call stuck in a worker, its caller interrupted as Prefect's timeout does it: (what the
    caller saw, the pids serving before)."""
    outcome: dict = {}
    started = tmp_path / "started"
    pool.map(sleep, [(0.5,), (0.5,)])  # both workers up and serving

    def caller() -> None:
        try:
            pool.call(job, seconds, str(started))
        except TimeoutError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=caller)
    thread.start()
    deadline = time.monotonic() + 120
    while not started.exists():  # the call is running in a worker
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.01)
    busy = set(pool.pids())
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(TimeoutError))
    thread.join(timeout=120)
    return outcome, busy


def test_a_caller_interrupted_while_waiting_gets_the_job_stopped_and_the_worker_serves_on(
    pool, tmp_path
) -> None:
    # Execute
    outcome, busy = _interrupted_caller(pool, sleep, 600, tmp_path)
    # Assert: the caller saw the timeout; the job was stopped, not the worker; the pool works at once
    assert isinstance(outcome.get("error"), TimeoutError)
    assert set(pool.pids()) == busy
    assert sorted(pool.map(sleep, [(0.0,), (0.0,)])) == sorted(busy)


class _TimedOutAfter:
    """A worker's connection whose `method` does its work, then the caller's timeout lands (raised
    into the calling thread at that instant, as Prefect's timeout does; TimeoutError is an OSError)."""

    def __init__(self, conn, method: str) -> None:
        self.conn, self.method = conn, method

    def __getattr__(self, name: str):
        real = getattr(self.conn, name)
        if name != self.method:
            return real

        def then_time_out(*args):
            real(*args)
            raise TimeoutError

        return then_time_out


@pytest.mark.parametrize("method", ["send", "recv"])
def test_a_timeout_landing_as_the_job_is_sent_or_answered_is_a_timeout_not_a_lost_worker(
    pool, method
) -> None:
    # Prepare: both workers serving; the next call's worker times out right after its send or recv
    serving = set(pool.map(sleep, [(0.0,), (0.0,)]))
    worker = pool._idle[0]
    real = worker.conn
    worker.conn = _TimedOutAfter(real, method)
    # Execute
    try:
        with pytest.raises(TimeoutError) as raised:
            pool.call(sleep, 0.2)
    finally:
        worker.conn = real
    # Assert: the caller saw its timeout (WorkerLost before); the job is stopped and the worker serves
    # on (sent), or the worker, whose answer was taken, does not answer the interruption and is replaced
    assert type(raised.value) is TimeoutError
    after = _serving(pool, 2)
    assert (after == serving) if method == "send" else len(after - serving) == 1
    assert pool.call(add, 2, 2) == 4


def test_a_job_a_signal_cannot_stop_gets_its_worker_killed_and_replaced(pool, tmp_path) -> None:
    # Execute
    outcome, busy = _interrupted_caller(pool, deaf_sleep, 600, tmp_path)
    # Assert: the caller saw the timeout, the stuck worker is gone, the pool works
    assert isinstance(outcome.get("error"), TimeoutError)
    assert len(_serving(pool, 2) - busy) == 1
    gone = busy - set(pool.pids())
    assert all(
        not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in gone
    )
    assert pool.call(add, 3, 4) == 7


def test_with_a_spare_per_worker_every_worker_killed_at_once_is_replaced_at_once() -> None:
    # Prepare: two workers, two warm spares
    pool = WorkerPool(2, torch_threads=1, spares=2)
    try:
        deadline = time.monotonic() + 120
        while len(pool.spare_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        spares = set(pool.spare_pids())
        assert len(spares) == 2
        # Execute: both workers stuck where no signal reaches, both callers interrupted
        results = [_interrupted_caller_async(pool) for _ in range(2)]
        for thread in results:
            thread.join(timeout=20)
        # Assert: the spares serve now, without waiting for a start
        started = time.monotonic()
        assert set(pool.map(sleep, [(0.2,), (0.2,)])) == spares
        assert time.monotonic() - started < 5
    finally:
        pool.close()


def _interrupted_caller_async(pool: WorkerPool) -> threading.Thread:
    def caller() -> None:
        with contextlib.suppress(TimeoutError):
            pool.call(deaf_sleep, 60)

    thread = threading.Thread(target=caller)
    thread.start()
    time.sleep(1.0)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(TimeoutError))
    return thread


def _serving(pool: WorkerPool, size: int, bound_s: float = 120) -> set[int]:
    """The serving workers' pids once there are `size` of them (a replacement starts in the background)."""
    deadline = time.monotonic() + bound_s
    while len(pool.pids()) < size and time.monotonic() < deadline:
        time.sleep(0.05)
    return set(pool.pids())


def test_setup_runs_once_per_worker_and_token(pool) -> None:
    # Execute: more calls than workers, two tokens
    seen = [pool.call(setups_seen, setup=("a", remember, lambda: ("a",))) for _ in range(6)]
    seen += [pool.call(setups_seen, setup=("b", remember, lambda: ("b",))) for _ in range(6)]
    # Assert: no worker ran a token's setup twice
    assert all(s.count("a") <= 1 and s.count("b") <= 1 for s in seen)
    assert all("a" in s for s in seen)


def data_summary(key: str, config: dict) -> tuple:
    data = load_data(config)  # must come from install_data: the dataset below cannot be built here
    return (
        data.train.x.is_shared(),
        float(data.train.x.sum()),
        [len(c) for c in data.natural],
        int(data.test.y.sum()),
        data.num_classes,
    )


def test_data_reaches_workers_as_shared_memory_not_a_rebuild(pool, cell_config) -> None:
    # Prepare
    config = cell_config("dataset=synthetic", "num_clients=7")
    key, packed = packed_data(config)
    data = load_data(config)
    broken = {**config, "dataset": {"_target_": "no.such.Dataset"}}  # a worker that rebuilt would fail
    # Execute
    shared, total, sizes, test_sum, classes = pool.call(
        data_summary, key, broken, setup=(key, install_data, lambda: (data_key(broken), packed))
    )
    # Assert
    assert shared
    assert total == pytest.approx(float(data.train.x.sum()))
    assert sizes == [len(c) for c in data.natural] and test_sum == int(data.test.y.sum())
    assert classes == data.num_classes


def test_workers_die_with_their_parent(tmp_path) -> None:
    # Prepare: a parent that starts a pool, reports its workers, then is killed with SIGKILL
    script = textwrap.dedent("""
        import sys, time
        from fedsweep.execution.workers import WorkerPool
        pool = WorkerPool(2, torch_threads=1)
        print(*pool.pids(), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    # Execute
    parent.kill()
    parent.wait()
    # Assert
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_pool_started_beside_other_threads_spawns_and_still_answers() -> None:
    # Prepare: another thread running, so forking would be unsafe
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        pool = WorkerPool(1, torch_threads=1)
        # Execute / Assert
        assert pool.call(add, 20, 22) == 42
        pool.close()
    finally:
        stop.set()
        other.join()


def meet(folder: str, name: str, bound_s: float) -> bool:
    """Arrive, then wait (at most bound_s) for the other call to arrive: whether both ran at once."""
    (Path(folder) / name).touch()
    deadline = time.monotonic() + bound_s
    while len(os.listdir(folder)) < 2:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_map_runs_calls_side_by_side_and_answers_in_order(pool, tmp_path) -> None:
    # Execute: two calls that each wait for the other (one after the other, the first would time out)
    met = pool.map(meet, [(str(tmp_path), "a", 120.0), (str(tmp_path), "b", 120.0)])
    # Assert: the two calls were running at the same time; answers come in call order
    assert met == [True, True]
    assert pool.map(add, [(i, 1) for i in range(6)]) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("device", "location", "expected"),
    [
        ("cpu", "/tmp/cell", True),
        ("cpu", "memory://cell", False),  # other processes cannot see it
        ("cuda", "/tmp/cell", False),  # a GPU is driven from the sweep's process
    ],
)
def test_which_cells_train_in_worker_processes(device, location, expected) -> None:
    from fedsweep.execution.processes import leaves_process

    assert leaves_process({"runner": {"device": device}}, location) is expected


def test_the_thread_engine_runs_every_job_in_the_calling_thread() -> None:
    from types import SimpleNamespace

    from fedsweep.execution.base import InThread
    from fedsweep.execution.thread import ThreadEngine

    executor = ThreadEngine().executor(SimpleNamespace(dir="/tmp/cell"))
    assert isinstance(executor, InThread) and executor.run(lambda cell_dir, x: (cell_dir, x), 3) == (
        "/tmp/cell",
        3,
    )


def test_a_replacement_is_the_warm_spare_started_before_it_was_needed() -> None:
    # Prepare: one worker that received a setup, then died: the first replacement starts a spare
    pool = WorkerPool(1, torch_threads=1)
    try:
        assert pool.call(setups_seen, setup=("a", remember, lambda: ("a",))) == ["a"]
        assert pool.spare_pid() is None
        with pytest.raises(WorkerLost):
            pool.call(die)
        deadline = time.monotonic() + 120
        while pool.spare_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        spare = pool.spare_pid()
        assert spare is not None and spare not in pool.pids() and psutil.pid_exists(spare)
        # Execute: the serving worker dies again
        with pytest.raises(WorkerLost):
            pool.call(die)
        # Assert: the worker that serves now is the spare that was alive before, warm with the setup
        assert pool.pids() == [spare]
        assert pool.call(setups_seen) == ["a"]
        assert pool.spare_pid() != spare
    finally:
        pool.close()
