"""A sweep on a real Dask cluster on loopback (`dask scheduler` and `dask worker` subprocesses).

A worker killed mid-run (SIGKILL) and a new one added: the sweep finishes, the new worker trains,
and the final weights are bitwise those of the local process pool. The scheduler killed mid-run:
the sweep stops with one clear line and a non-zero exit; re-run on a new cluster, it resumes from
the last committed round and ends with the same weights.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sweep_cli import REPO, recorded, run_sweep, start_sweep

pytestmark = pytest.mark.slow
# Stragglers that sleep (their maths unchanged) make rounds long enough to kill something mid-round.
ARGS = (
    "+experiment=quickstart",
    "sweep_name=elastic",
    "strategy=fedavg",
    "num_clients=10",
    "rounds=5",
    "faults=stragglers",
    "faults.partial=false",
    "faults.delay_s=0.4",
    "runner.progress=false",
)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }


class Cluster:
    """A scheduler and workers, each its own process on 127.0.0.1, in a folder of their own."""

    def __init__(self, where: Path) -> None:
        self.where, self.file = where, where / "scheduler.json"
        self.file.unlink(missing_ok=True)
        self.scheduler = self._start(
            "distributed.cli.dask_scheduler",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(self.file),
        )
        deadline = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers: dict[str, subprocess.Popen] = {}

    def _start(self, module: str, *args: str, log: str = "scheduler") -> subprocess.Popen:
        out = open(self.where / f"{log}.log", "w")  # kept open for the process's life
        return subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", *args],
            cwd=self.where,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def add_worker(self, name: str) -> None:
        self.workers[name] = self._start(
            "distributed.cli.dask_worker",
            self.address,
            "--nthreads",
            "1",
            "--no-nanny",
            "--name",
            name,
            log=name,
        )

    def wait_for(self, names: set[str], timeout: float = 90) -> None:
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if names <= {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}:
                    return
                time.sleep(0.3)
        raise TimeoutError(f"workers {names} did not join {self.address}")

    def executed(self) -> dict[str, int]:
        """Tasks each live worker has run (its own count, read on the worker)."""
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
            counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
        return {names[a]: n for a, n in counts.items()}

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    where = tmp_path / "cluster"
    where.mkdir()
    made = Cluster(where)
    try:
        yield made
    finally:
        made.close()


def _hash(cwd: Path) -> str:
    return recorded(cwd, "elastic")["fedavg-c10-r5-s0"][0].data.tags["final_weights_sha256"]


def _wait_for_round(cwd: Path, rnd: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until the sweep has started round `rnd` (its first task results are persisted)."""
    deadline = time.monotonic() + timeout
    while not list(cwd.glob(f"outputs/elastic/prefect-results/*/round-{rnd:06d}")):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended or stalled first"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def local_hash(tmp_path_factory: pytest.TempPathFactory, prefect_home: Path) -> str:
    cwd = tmp_path_factory.mktemp("local")
    run_sweep(cwd, prefect_home, *ARGS, "runner.pool=process")
    return _hash(cwd)


def test_worker_killed_and_added_mid_run_same_hash(
    cluster: Cluster, local_hash: str, tmp_path: Path, prefect_home: Path
) -> None:
    # Prepare: two workers
    cluster.add_worker("a")
    cluster.add_worker("b")
    cluster.wait_for({"a", "b"})
    cwd = tmp_path / "sweep"
    cwd.mkdir()
    # Execute: kill worker a as round 2 starts, add worker c
    tick = time.monotonic()
    proc = start_sweep(cwd, prefect_home, *ARGS, "runner.pool=dask", f"runner.dask.address={cluster.address}")
    _wait_for_round(cwd, 2, proc)
    cluster.workers["a"].send_signal(signal.SIGKILL)
    cluster.add_worker("c")
    out, _ = proc.communicate(timeout=600)
    wall = time.monotonic() - tick
    # Assert
    assert proc.returncode == 0, out[-4000:]
    assert _hash(cwd) == local_hash
    executed = cluster.executed()
    assert set(executed) == {"b", "c"} and executed["c"] > 0, executed
    _, metrics, _ = recorded(cwd, "elastic")["fedavg-c10-r5-s0"]
    print(
        f"\nworker killed: wall {wall:.1f}s, tasks run by b/c {executed}, workers per round "
        f"{metrics['workers']}, retries per round {metrics['retries']}"
    )


def test_scheduler_lost_stops_then_resumes_on_new_cluster(
    cluster: Cluster, local_hash: str, tmp_path: Path, prefect_home: Path
) -> None:
    # Prepare
    cluster.add_worker("a")
    cluster.wait_for({"a"})
    cwd = tmp_path / "sweep"
    cwd.mkdir()
    # Execute: kill the scheduler as round 3 starts
    tick = time.monotonic()
    proc = start_sweep(cwd, prefect_home, *ARGS, "runner.pool=dask", f"runner.dask.address={cluster.address}")
    _wait_for_round(cwd, 3, proc)
    cluster.scheduler.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    out, _ = proc.communicate(timeout=300)
    stopped = time.monotonic() - killed
    cluster.close()
    fresh = Cluster(tmp_path / "cluster")  # a new scheduler, on another port
    try:
        fresh.add_worker("z")
        fresh.wait_for({"z"})
        again = run_sweep(
            cwd, prefect_home, *ARGS, "runner.pool=dask", f"runner.dask.address={fresh.address}"
        )
    finally:
        fresh.close()
    # Assert
    assert proc.returncode != 0, out[-4000:]
    assert "the Dask scheduler at" in out and "stopped answering" in out, out[-4000:]
    assert re.search(r"resuming cell \S+ after round [23] of 5", again), again[-4000:]
    assert _hash(cwd) == local_hash
    print(
        f"\nscheduler lost: the sweep stopped {stopped:.1f}s after the kill "
        f"({killed - tick:.1f}s after start):\n{out[-1500:]}\nre-run:\n{again[-1500:]}"
    )


def test_parallel_cells_on_a_local_cluster_same_hashes(tmp_path: Path, prefect_home: Path) -> None:
    # Prepare: two cells, one after the other on the process pool
    args = (
        "+experiment=quickstart",
        "sweep_name=cells",
        "num_clients=10",
        "rounds=2",
        "runner.progress=false",
    )
    local, dask = tmp_path / "local", tmp_path / "dask"
    local.mkdir()
    dask.mkdir()
    run_sweep(local, prefect_home, *args)
    # Execute: the runner=dask preset (two cells at once) on a temporary LocalCluster of two workers
    out = run_sweep(dask, prefect_home, *args, "runner=dask", "runner.dask.n_workers=2")
    # Assert
    hashes = {
        cwd: {n: r[0].data.tags.get("final_weights_sha256") for n, r in recorded(cwd, "cells").items()}
        for cwd in (local, dask)
    }
    assert hashes[dask] == hashes[local] and len(hashes[local]) == 3, out[-3000:]
    assert "dask: scheduler tcp://127.0.0.1:" in out and "dashboard http://" in out
    parent = recorded(dask, "cells")["cells"][0]
    assert parent.data.tags["dask_dashboard"].startswith("http://")
