"""A sweep on a real Dask cluster on loopback (`dask scheduler` and `dask worker` subprocesses), in
one scenario against one uninterrupted run on the local process pool:

- a worker killed mid-run (SIGKILL) and a new one added: the sweep goes on and the new worker trains;
- then the scheduler killed mid-run: the sweep stops with one clear line and a non-zero exit;
- re-run on a new cluster (the runner=dask preset: a temporary LocalCluster, two cells at once), it
  resumes from the last committed round, and every cell ends with the local pool's weights.
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
ARGS = (
    "+experiment=quickstart",
    "sweep_name=elastic",
    "grid.num_clients=[10]",
    "rounds=4",
    "faults=stragglers",
    "faults.partial=false",
    "runner.progress=false",
)
# On the cluster, stragglers that sleep make rounds long enough to kill something mid-round; their
# maths is unchanged, so the local pool's reference runs without the sleep.
SLOW = "faults.delay_s=0.15"  # 5 stragglers x 5 epochs: ~2 s of sleep a round on 2 workers


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
            return self._executed(client)

    @staticmethod
    def _executed(client) -> dict[str, int]:
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        # on_error="ignore": a worker just killed may still be listed; it has nothing to say
        counts = client.run(lambda dask_worker: dask_worker.state.executed_count, on_error="ignore")
        return {names[a]: n for a, n in counts.items() if a in names}

    def wait_trained(self, name: str, proc: subprocess.Popen, timeout: float = 900) -> dict[str, int]:
        """Until worker `name` has run a task (the sweep still running); every worker's count."""
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            deadline = time.monotonic() + timeout
            while (counts := self._executed(client)).get(name, 0) == 0:
                assert proc.poll() is None, f"the sweep ended before worker {name} trained: {counts}"
                assert time.monotonic() < deadline, f"worker {name} ran nothing in {timeout} s: {counts}"
                time.sleep(0.3)
        return counts

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


def _hashes(cwd: Path) -> dict[str, str]:
    return {n: r[0].data.tags.get("final_weights_sha256") for n, r in recorded(cwd, "elastic").items()}


def _wait_for_round(cwd: Path, rnd: int, proc: subprocess.Popen, timeout: float = 900) -> None:
    """Until the sweep has started round `rnd` of its first cell (its first task results are
    persisted); it must still be running, the bound is generous."""
    deadline = time.monotonic() + timeout
    while not list(cwd.glob(f"outputs/elastic/prefect-results/*/round-{rnd:06d}")):
        assert proc.poll() is None, f"the sweep ended ({proc.returncode}) before round {rnd}"
        assert time.monotonic() < deadline, f"no round {rnd} after {timeout} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def local_hashes(tmp_path_factory: pytest.TempPathFactory, prefect_home: Path) -> dict[str, str]:
    cwd = tmp_path_factory.mktemp("local")
    run_sweep(cwd, prefect_home, *ARGS, "runner.pool=process")
    return _hashes(cwd)


def test_worker_killed_and_added_then_scheduler_lost_then_resumed_on_a_new_cluster(
    cluster: Cluster, local_hashes: dict[str, str], tmp_path: Path, prefect_home: Path
) -> None:
    # Prepare: two workers
    cluster.add_worker("a")
    cluster.add_worker("b")
    cluster.wait_for({"a", "b"})
    cwd = tmp_path / "sweep"
    cwd.mkdir()
    # Execute: kill worker a as round 2 starts, add worker c; once c has trained, kill the scheduler
    tick = time.monotonic()
    proc = start_sweep(
        cwd, prefect_home, *ARGS, SLOW, "runner.pool=dask", f"runner.dask.address={cluster.address}"
    )
    _wait_for_round(cwd, 2, proc)
    cluster.workers["a"].send_signal(signal.SIGKILL)
    cluster.add_worker("c")
    executed = cluster.wait_trained("c", proc)
    cluster.scheduler.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    out, _ = proc.communicate(timeout=600)
    stopped = time.monotonic() - killed
    cluster.close()
    # Execute: the same command on a new cluster: the runner=dask preset's temporary LocalCluster
    again = run_sweep(cwd, prefect_home, *ARGS, SLOW, "runner=dask", "runner.dask.n_workers=2")
    # Assert: the new worker trained in the dead one's place
    assert set(executed) == {"b", "c"} and executed["c"] > 0, executed
    # Assert: the lost scheduler stopped the sweep with one clear line
    assert proc.returncode != 0, out[-4000:]
    assert "the Dask scheduler at" in out and "stopped answering" in out, out[-4000:]
    # Assert: the re-run resumed on the new cluster, two cells at once, to the local pool's weights
    assert re.search(r"resuming cell \S+ after round [1-3] of 4", again), again[-4000:]
    assert "dask: scheduler tcp://127.0.0.1:" in again and "dashboard http://" in again
    assert _hashes(cwd) == local_hashes and len(local_hashes) == 3, again[-3000:]
    parent = recorded(cwd, "elastic")["elastic"][0]
    assert parent.data.tags["dask_dashboard"].startswith("http://")
    print(
        f"\nworker killed, then scheduler lost: tasks run by b/c {executed}; the sweep stopped "
        f"{stopped:.1f}s after the scheduler's kill ({killed - tick:.1f}s after start):\n{out[-1500:]}"
        f"\nre-run:\n{again[-1500:]}"
    )
