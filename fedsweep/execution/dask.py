"""The Dask backend: a cell's jobs on a Dask cluster (`runner.pool=dask`, settings in `runner.dask`).

Prefect stays the orchestrator in the sweep's process; only the pure jobs (fedsweep/jobs.py) go to
Dask, each as one `client.submit(..., pure=False)` whose answer is a small reference. Rules:

- **Which cluster.** `address`: an existing scheduler (`dask scheduler`, a SLURM allocation, …);
  `cluster`: any cluster class by `_target_` with its own keyword arguments (built here, closed at
  the end, `scale(n_workers)` when `n_workers` > 0); neither: a temporary LocalCluster of
  `n_workers` (0: one per usable CPU) single-thread worker processes on loopback.
- **Data moves once.** A job carries the cell's folder and small arguments; a worker rebuilds the
  cell from the folder's cell.json once per process (`cell_env`), dataset and torch threads
  included. The folder must therefore be visible to every worker (a shared filesystem or an fsspec
  URL): `check_cell_visible` asks every worker before a cell's first job.
- **Faults.** A worker lost mid-job: the scheduler runs the job again elsewhere; a job whose
  workers keep dying ends in `KilledWorker`, raised here as the retryable `WorkerLost`, so
  Prefect's retries see it. A Prefect timeout raises in the waiting thread: the future is cancelled
  (a job already running on a worker finishes there, and its answer is dropped). A scheduler that
  stops answering raises `SchedulerLost`, which stops the sweep; re-running resumes.
- **Width** is the cluster's current number of worker threads, read at each `executor_for`, so
  work added or lost mid-sweep changes how widely the next round spreads, never its results.
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from fedsweep.config.errors import ConfigError
from fedsweep.execution.base import Job
from fedsweep.execution.workers import WorkerLost, usable_cpus

POLL_S = 0.05  # a waiting thread wakes this often, so that a task timeout raised in it lands
LOST_AFTER_S = 10.0  # a client that cannot reach its scheduler this long has lost it


class SchedulerLost(RuntimeError):
    """The Dask scheduler stopped answering: the sweep cannot go on (re-running resumes)."""

    kind = "scheduler_lost"


class CellNotShared(RuntimeError):
    """A Dask worker cannot see a cell's folder (checkpoint.location is not shared storage)."""


def _on_worker(job: Job, cell_dir: str, *args: Any) -> tuple[str, Any]:
    """(this worker's address, `job(cell_dir, *args)`): the executor counts who served a round."""
    from distributed import get_worker  # noqa: PLC0415 - on the worker, where dask is installed

    return get_worker().address, job(cell_dir, *args)


def _warm() -> None:
    """Pay a worker's imports (torch, the jobs, torch._dynamo) while the sweep starts up."""
    from fedsweep import jobs  # noqa: F401, PLC0415
    from fedsweep.cell import warm_imports  # noqa: PLC0415

    warm_imports()


def _sees(cell_dir: str) -> bool:
    return "://" in cell_dir or os.path.isfile(os.path.join(cell_dir, "cell.json"))


class DaskBackend:
    """The sweep's Dask client (and the cluster it started, if any); one per process."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        try:
            from distributed import Client, LocalCluster, fire_and_forget  # noqa: PLC0415
        except ImportError:
            raise ConfigError(
                'runner.pool=dask needs dask: pip install "fedsweep[dask]"', key="runner.pool"
            ) from None
        timeout, self.cluster = f"{settings['connect_timeout_s']}s", None
        if settings["address"]:
            target, key = settings["address"], "runner.dask.address"
        elif settings["cluster"]:
            self.cluster, key = _build_cluster(settings), "runner.dask.cluster"
            target = self.cluster
        else:
            key = "runner.dask.n_workers"
            try:
                with _quiet():
                    self.cluster = LocalCluster(
                        n_workers=settings["n_workers"] or usable_cpus(),
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address="127.0.0.1:0",
                        silence_logs=logging.CRITICAL,
                    )
            except Exception as exc:  # noqa: BLE001 - any failure to start is the user's setting to fix
                raise ConfigError(
                    f"runner.pool=dask: a LocalCluster could not start: {_line(exc)}", key=key
                ) from None
            target = self.cluster
        try:
            self.client = Client(target, timeout=timeout, set_as_default=False)
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise ConfigError(
                f"{key}: no Dask scheduler answers at {settings['address'] or 'the cluster'} "
                f"within {timeout}: {_line(exc)}",
                key=key,
            ) from None
        self.address = self.client.scheduler.address
        self.dashboard = self.client.dashboard_link
        # The workers import while Prefect's server starts (a task each; nothing waits for them).
        fire_and_forget(
            [
                self.client.submit(_warm, pure=False, workers=[w], allow_other_workers=True)
                for w in self.workers()
            ]
        )
        self._visible: set[str] = set()
        self._served: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self.lost = False  # once the scheduler is lost, every later wait fails at once

    def width(self) -> int:
        """Worker threads the scheduler knows now (at least 1: work waits for workers to come)."""
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def check_cell_visible(self, cell_dir: str) -> None:
        """CellNotShared unless every current worker sees the cell's folder (asked once per cell)."""
        if cell_dir in self._visible:
            return
        seen = self.client.run(_sees, cell_dir)
        blind = sorted(w for w, ok in seen.items() if not ok)
        if blind:
            raise CellNotShared(
                f"Dask worker(s) {', '.join(blind)} cannot see the cell folder {cell_dir}: "
                "checkpoint.location must be storage every worker reaches (a shared "
                "filesystem at the same path, or an fsspec URL such as s3://...)"
            )
        self._visible.add(cell_dir)

    def served(self, cell_dir: str) -> int:
        """How many distinct workers ran the cell's jobs since the last call (a round's `workers`)."""
        with self._lock:
            return len(self._served.pop(cell_dir, set()))

    def wait(self, cell_dir: str, future: Any) -> Any:
        """The future's answer; cancels it if this thread is interrupted (a Prefect timeout)."""
        from distributed import KilledWorker  # noqa: PLC0415

        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        lost_since = None
        try:
            while not done.wait(POLL_S):
                if self.lost:
                    raise SchedulerLost(self.lost_message())
                if self.client.status == "running":
                    lost_since = None
                elif time.monotonic() - (lost_since := lost_since or time.monotonic()) > LOST_AFTER_S:
                    self.lost = True
                    raise SchedulerLost(self.lost_message())
            if future.status == "cancelled" and (self.lost or self.client.status != "running"):
                self.lost = True
                raise SchedulerLost(self.lost_message())
            worker, answer = future.result()
        except KilledWorker as exc:
            raise WorkerLost(f"Dask workers kept dying while running this job: {exc}") from None
        except BaseException:
            future.cancel()
            raise
        with self._lock:
            self._served.setdefault(cell_dir, set()).add(worker)
        return answer

    def submit(self, job: Job, cell_dir: str, args: tuple) -> Any:
        """A future of `job(cell_dir, *args)` on some worker; SchedulerLost once the scheduler is gone."""
        if self.lost:
            raise SchedulerLost(self.lost_message())
        try:
            return self.client.submit(_on_worker, job, cell_dir, *args, pure=False)
        except Exception:
            if self.client.status == "running":
                raise
            self.lost = True
            raise SchedulerLost(self.lost_message()) from None

    def lost_message(self) -> str:
        return (
            f"the Dask scheduler at {self.address} stopped answering; start a cluster and run the same "
            "command again: the sweep resumes from the last committed round"
        )

    def close(self) -> None:
        for thing in (getattr(self, "client", None), self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing what may already be gone
                    pass


class DaskExecutor:
    """Jobs of one cell as Dask futures; `width` is the cluster's worker threads now."""

    def __init__(self, backend: DaskBackend) -> None:
        self.backend = backend

    @property
    def width(self) -> int:  # asked of the scheduler only when needed (evaluation splits by it)
        return self.backend.width()

    def run(self, cell_dir: str, job: Job, *args: Any) -> Any:
        return self.backend.wait(cell_dir, self.backend.submit(job, cell_dir, args))

    def map(self, cell_dir: str, job: Job, calls: list[tuple]) -> list[Any]:
        futures = []
        try:
            futures = [self.backend.submit(job, cell_dir, args) for args in calls]
            return [self.backend.wait(cell_dir, f) for f in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _build_cluster(settings: Mapping[str, Any]) -> Any:
    """The cluster `runner.dask.cluster` describes, scaled to `n_workers` when that is > 0."""
    from distributed import LocalCluster  # noqa: PLC0415

    from fedsweep.config.plugins import build, plugin_class  # noqa: PLC0415

    key, node = "runner.dask.cluster", dict(settings["cluster"])
    if issubclass(plugin_class(node, key=key), LocalCluster):  # its worker processes log to our terminal
        node.setdefault("silence_logs", logging.CRITICAL)
    try:
        with _quiet():
            cluster = build(node, key=key)
            if settings["n_workers"]:
                cluster.scale(settings["n_workers"])
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a cluster class's own failure (a port, a queue, a binary)
        raise ConfigError(
            f"{key}: {settings['cluster']['_target_']} could not start: {_line(exc)}", key=key
        ) from None
    return cluster


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Dask's own logging off while a cluster starts, here and in the worker processes it spawns
    (a failure is reported as one line by the caller); afterwards errors only."""
    logger, before = logging.getLogger("distributed"), os.environ.get(_LOG_ENV)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    os.environ[_LOG_ENV] = "critical"
    try:
        yield
    finally:
        logger.setLevel(max(level, logging.ERROR))
        os.environ[_LOG_ENV] = "error" if before is None else before


_LOG_ENV = "DASK_LOGGING__DISTRIBUTED"


def _line(exc: BaseException) -> str:
    """The error and its root cause, on one line (dask wraps the cause: "Cluster failed to start")."""
    root = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    text = f"{type(exc).__name__}: {exc}" + (f" ({type(root).__name__}: {root})" if root is not exc else "")
    return " ".join(text.split())[:400]
