"""The Dask engine: a cell's jobs on a Dask cluster (`runner/engine=dask`, or `runner=dask`; its
settings are `runner.engine.*`, conf/runner/engine/dask.yaml).

Prefect stays the orchestrator in the sweep's process; only the pure jobs (fedsweep/jobs.py) go to
Dask, each as one `client.submit(..., pure=False)` whose answer is a small reference. Rules:

- **Which cluster.** `address`: an existing scheduler (`dask scheduler`, a SLURM allocation, …);
  `cluster`: any cluster class by `_target_` with its own keyword arguments (built here, closed at
  the end, `scale(n_workers)` when `n_workers` > 0); neither: a temporary LocalCluster of
  `n_workers` (0: one per usable CPU) single-thread worker processes on loopback.
- **Data moves once.** A job carries the cell's folder and small arguments; a worker rebuilds the
  cell from the folder's cell.json once per process (`open_cell`), dataset and torch threads
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
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fedsweep.cell.cell import Cell
from fedsweep.cell.methods import warm_imports
from fedsweep.config.errors import ConfigError
from fedsweep.config.plugins import build, plugin_class
from fedsweep.execution.base import Engine, EngineInfo, EngineLost, Executor, Job, PlannedCell, WorkerLost
from fedsweep.execution.workers import usable_cpus
from fedsweep.params import ParamError, count, positive

_ADDRESS = re.compile(r"([a-z]+://)?[^/:\s]+:\d+")
POLL_S = 0.05  # a waiting thread wakes this often, so that a task timeout raised in it lands
LOST_AFTER_S = 10.0  # a client that cannot reach its scheduler this long has lost it


class SchedulerLost(EngineLost):
    """The Dask scheduler stopped answering: the sweep cannot go on (re-running resumes)."""


class CellNotShared(RuntimeError):
    """A Dask worker cannot see a cell's folder (checkpoint.location is not shared storage)."""


def _on_worker(job: Job, cell_dir: str, *args: Any) -> tuple[str, Any]:
    """(this worker's address, `job(cell_dir, *args)`): the executor counts who served a round."""
    from distributed import get_worker  # noqa: PLC0415 - on the worker, where dask is installed

    return get_worker().address, job(cell_dir, *args)


def _warm() -> None:
    """Pay a worker's imports (torch, the jobs, and torch._dynamo: a cluster may serve sweeps that
    train clients batched) while the sweep starts up."""
    from fedsweep import jobs  # noqa: F401, PLC0415 - on the worker, ahead of its first job

    warm_imports(batched=True)


def _sees(cell_dir: str) -> bool:
    return "://" in cell_dir or os.path.isfile(os.path.join(cell_dir, "cell.json"))


class DaskBackend:
    """The sweep's Dask client (and the cluster it started, if any); one per process."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        try:
            from distributed import Client, LocalCluster, fire_and_forget  # noqa: PLC0415 - the optional extra
        except ImportError:
            raise ConfigError(
                'runner/engine=dask needs dask: pip install "fedsweep[dask]"', key="runner.engine"
            ) from None
        timeout, self.cluster = f"{settings['connect_timeout_s']}s", None
        if settings["address"]:
            target, key = settings["address"], "runner.engine.address"
        elif settings["cluster"]:
            self.cluster, key = _build_cluster(settings), "runner.engine.cluster"
            target = self.cluster
        else:
            key = "runner.engine.n_workers"
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
                    f"runner/engine=dask: a LocalCluster could not start: {_line(exc)}", key=key
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
        from distributed import KilledWorker  # noqa: PLC0415 - the optional extra

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

    def __init__(self, backend: DaskBackend, cell_dir: str) -> None:
        self.backend, self.cell_dir = backend, cell_dir

    @property
    def width(self) -> int:  # asked of the scheduler only when needed (evaluation splits by it)
        return self.backend.width()

    def run(self, job: Job, *args: Any) -> Any:
        return self.backend.wait(self.cell_dir, self.backend.submit(job, self.cell_dir, args))

    def map(self, job: Job, calls: list[tuple]) -> list[Any]:
        futures = []
        try:
            futures = [self.backend.submit(job, self.cell_dir, args) for args in calls]
            return [self.backend.wait(self.cell_dir, f) for f in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


class DaskEngine(Engine):
    """A Dask cluster: an existing scheduler (`address`), any cluster class (`cluster`, by `_target_`),
    or a temporary LocalCluster of `n_workers` single-thread workers (0: one per usable CPU)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        cluster: dict[str, Any] | None = None,
        n_workers: int = 0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        owner = type(self).__name__
        if address is not None and not _ADDRESS.fullmatch(address):
            reason = f"must be null or a scheduler address such as tcp://HOST:8786 (got {address!r})"
            raise ParamError(owner, "address", reason)
        if cluster is not None and not isinstance(cluster.get("_target_"), str):
            reason = (
                "must be null or a mapping with a _target_ (a cluster class: dask_jobqueue.SLURMCluster, ...)"
            )
            raise ParamError(owner, "cluster", reason)
        if address is not None and cluster is not None:
            raise ParamError(
                owner, "cluster", "is set with address; choose one (address: a running scheduler)"
            )
        count(owner, "n_workers", n_workers, least=0)
        positive(owner, "connect_timeout_s", connect_timeout_s)
        self.settings = {
            "address": address,
            "cluster": cluster,
            "n_workers": n_workers,
            "connect_timeout_s": connect_timeout_s,
        }
        self.backend: DaskBackend | None = None
        self._lock = threading.Lock()

    def start(self, cells: Sequence[PlannedCell]) -> None:
        """Connect to (or start) the cluster; a ConfigError, naming the key, when none can be had."""
        with self._lock:
            if self.backend is None:
                self.backend = DaskBackend(self.settings)

    def _started(self) -> DaskBackend:
        if self.backend is None:
            self.start([])
        assert self.backend is not None
        return self.backend

    def executor(self, cell: Cell) -> Executor:
        backend = self._started()
        where = _for_workers(cell.dir)
        backend.check_cell_visible(where)
        return DaskExecutor(backend, where)

    def width(self) -> int:
        return self._started().width()

    def describe(self) -> EngineInfo | None:
        if self.backend is None:
            return None
        address, dashboard = self.backend.address, self.backend.dashboard
        return EngineInfo(
            line=f"dask: scheduler {address}, dashboard {dashboard}",
            tags={"dask_scheduler": address, "dask_dashboard": dashboard},
            links=(("dask-dashboard", dashboard, f"Dask scheduler {address}"),),
        )

    def round_measures(self, cell: Cell) -> dict[str, float]:
        """`workers`: the Dask workers that ran the cell's jobs since the last call."""
        return {} if self.backend is None else {"workers": float(self.backend.served(_for_workers(cell.dir)))}

    def shutdown(self) -> None:
        with self._lock:
            if self.backend is not None:
                self.backend.close()
                self.backend = None

    @classmethod
    def check_plan(cls, settings: Mapping[str, Any], locations: Sequence[str]) -> None:
        """dask is installed, the cluster class imports and takes its keys, a scheduler answers at
        `address` (one TCP connect), and the cells' state is not a `memory://` store that workers
        cannot reach. Prints one warning when remote workers must share a local path."""
        import importlib.util  # noqa: PLC0415 - the optional extra: found, not imported

        from fedsweep.config.plugins import check_params, plugin_class  # noqa: PLC0415 - plan time only

        if importlib.util.find_spec("distributed") is None:
            raise ConfigError(
                'runner/engine=dask needs dask: pip install "fedsweep[dask]"', key="runner.engine"
            )
        for location in locations:
            if location.startswith("memory://"):
                raise ConfigError(
                    f"checkpoint.location={location} lives in this process only and Dask workers cannot "
                    "reach it; use a path or URL every worker can read (runner/engine=dask)",
                    key="checkpoint.location",
                )
        if settings.get("cluster"):
            key = "runner.engine.cluster"
            check_params(settings["cluster"], plugin_class(settings["cluster"], key=key), key=key)
        address = settings.get("address")
        if not address:
            return
        host, port = address.split("://")[-1].rsplit(":", 1)
        timeout = min(float(settings.get("connect_timeout_s", 10.0)), 5.0)
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"runner.engine.address={address}: no Dask scheduler answers there ({reason})",
                key="runner.engine.address",
            ) from None
        local = [
            Path(p.removeprefix("file://")).absolute()
            for p in locations
            if "://" not in p or p.startswith("file://")
        ]
        if local:
            print(
                f"warning: runner.engine.address is set: every Dask worker must see {local[0]} (where the "
                "cells' state lives, checkpoint.location) at the same path: shared storage",
                file=sys.stderr,
                flush=True,
            )


def _for_workers(cell_dir: str) -> str:
    """The cell's folder as workers elsewhere name it: absolute (their working directory differs)."""
    return cell_dir if "://" in cell_dir else str(Path(cell_dir).absolute())


def _build_cluster(settings: Mapping[str, Any]) -> Any:
    """The cluster `runner.engine.cluster` describes, scaled to `n_workers` when that is > 0."""
    from distributed import LocalCluster  # noqa: PLC0415 - the optional extra

    key, node = "runner.engine.cluster", dict(settings["cluster"])
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
    root, deeper = exc, exc.__cause__ or exc.__context__
    while deeper is not None:
        root, deeper = deeper, deeper.__cause__ or deeper.__context__
    text = f"{type(exc).__name__}: {exc}" + (f" ({type(root).__name__}: {root})" if root is not exc else "")
    return " ".join(text.split())[:400]
