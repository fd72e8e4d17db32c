"""The Dask executor on a small real LocalCluster: answers, errors, a Prefect timeout cancels the
Dask future, a worker that keeps dying becomes the retryable WorkerLost; the settings are checked."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sweep_cli import slowdown

from fedsweep.config import ConfigError
from fedsweep.execution.base import WorkerLost
from fedsweep.execution.dask import DaskBackend, DaskEngine, DaskExecutor

REPO = Path(__file__).resolve().parents[2]


def _settings(**cluster: object) -> dict:
    node = {"_target_": "distributed.LocalCluster", "n_workers": 2, "threads_per_worker": 1, **cluster}
    return {"address": None, "cluster": node, "n_workers": 0, "connect_timeout_s": 20}


@pytest.fixture(scope="module")
def backend() -> Iterator[DaskBackend]:
    """One LocalCluster of two worker processes for the module (starting one costs seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        made = DaskBackend(_settings(processes=True))
        try:
            yield made
        finally:
            made.close()


def _scheduled(backend: DaskBackend) -> int:
    """Jobs the scheduler still holds (the workers' warm-up tasks aside)."""
    return backend.client.run_on_scheduler(
        lambda dask_scheduler: sum(str(k).startswith("_on_worker") for k in dask_scheduler.tasks)
    )


@pytest.mark.slow
def test_run_map_errors_and_width(backend: DaskBackend) -> None:
    # Prepare
    executor = DaskExecutor(backend, "cell")
    # Execute
    one = executor.run(lambda cell_dir, x: (cell_dir, x * 2), 21)
    many = executor.map(lambda cell_dir, x: x * x, [(i,) for i in range(6)])
    # Assert
    assert executor.width == 2
    assert one == ("cell", 42) and many == [0, 1, 4, 9, 16, 25]
    assert backend.served("cell") >= 1 and backend.served("cell") == 0  # counted once, then reset
    with pytest.raises(ZeroDivisionError):
        executor.run(lambda cell_dir: 1 / 0)


@pytest.mark.slow
def test_prefect_timeout_cancels_the_dask_future(backend: DaskBackend, prefect_harness) -> None:
    # Prepare: a task whose job outlives its timeout
    from prefect import task

    executor = DaskExecutor(backend, "cell")

    @task(timeout_seconds=1, retries=0)
    def slow() -> None:
        executor.run(lambda cell_dir: time.sleep(30))

    # Execute
    tick = time.monotonic()
    state = slow(return_state=True)
    waited = time.monotonic() - tick
    # Assert: the task failed on time (a bound scaled by the machine's load) and the scheduler forgot the job
    assert state.is_failed() and waited < 10 * slowdown(), waited
    deadline = time.monotonic() + 10 * slowdown()
    while _scheduled(backend) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _scheduled(backend) == 0


@pytest.mark.slow
def test_a_job_that_kills_its_workers_is_a_retryable_worker_lost(backend: DaskBackend) -> None:
    # Prepare
    import dask

    executor = DaskExecutor(backend, "cell")
    allowed = backend.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    # Execute / Assert: the scheduler gives up after allowed-failures deaths
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            backend.client.run_on_scheduler(
                lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0)
            )
            with pytest.raises(WorkerLost, match="kept dying"):
                executor.run(lambda cell_dir: os._exit(1))
    finally:  # the module's cluster, as it was
        backend.client.run_on_scheduler(
            lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", allowed)
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"address": "localhost"}, "tcp://HOST:8786"),
        ({"cluster": {"n_workers": 2}}, "_target_"),
        ({"address": "tcp://h:1", "cluster": {"_target_": "x.Y"}}, "choose one"),
        ({"n_workers": -1}, ">= 0"),
    ],
)
def test_dask_settings_are_checked(settings: dict, message: str) -> None:
    # Prepare
    from fedsweep.config.plugins import build

    node = {"_target_": "fedsweep.execution.dask.DaskEngine", "_recursive_": False, **settings}
    # Execute / Assert: one line naming the key, as every plug-in's
    with pytest.raises(ConfigError, match=f"runner.engine.*{message}"):
        build(node, key="runner.engine")
    assert isinstance(
        build({"_target_": "fedsweep.execution.dask.DaskEngine"}, key="runner.engine"), DaskEngine
    )
