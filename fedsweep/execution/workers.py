"""Worker processes that run functions for the main process (the process backend of the seam).

On a small CPU, training clients in single-thread processes side by side beats one process with as
many intra-op threads (no spin-waiting between tiny kernels, no GIL shared with orchestration
threads); measured in benchmarks/README.md. A `WorkerPool` keeps `size` processes alive for the
whole sweep and hands each `call` to an idle one; the caller's thread blocks until the answer comes.

- **Start-up costs nothing when it can.** A pool created while the process is still single-threaded
  forks, so workers start with torch already imported. Forking a process that runs other threads
  (Prefect's, MLflow's) is unsafe, so a pool created later, and every replacement, spawns instead.
- **Data is shipped once, not re-made.** `call(..., setup=(token, fn, make_args))` runs
  `fn(*make_args())` on a worker before its first call that needs `token`: the sweep sends each
  worker the dataset as shared memory tensors (torch.multiprocessing), so one copy of the data
  serves every process.
- **A stuck or dead worker is replaced.** An exception raised in a worker is raised in the caller
  (with the worker's traceback as a note) and the worker serves on. If the caller is interrupted
  while waiting (a task timeout or a round deadline raises in its thread), the job is interrupted
  first (SIGUSR2 raises `JobInterrupted` in it: a sleep, a Python loop, anything between two of
  torch's kernels stops there) and the worker serves on if it answers within INTERRUPT_WAIT_S; one
  stuck where a signal cannot reach is killed and replaced. A worker that dies (the OS's OOM killer,
  a crash) raises `WorkerLost`, a retryable error, and is replaced too.
- **Replacing never stalls the caller.** A spawn imports torch and receives the data (seconds), so
  a killed worker's place is taken by a warm spare at once, and the next spare starts in the
  background (the starter threads): a worker that has run `warm` (imports) and every setup seen so
  far (data). Without a warm spare, the slot is refilled in the background when one is ready, and
  the other workers serve meanwhile. A spare costs a process, so there are spares only where workers
  are lost: `spares` of them from the pool's start (the sweep asks for one per worker when a round
  deadline is set: a deadline that fires may kill every worker at once, and the round's evaluation
  must find warm ones), else one from the first replacement on.
- **No orphans.** Workers ask the kernel to kill them when their parent dies (PR_SET_PDEATHSIG),
  ignore Ctrl-C and SIGTERM (the main process handles them, also when a batch scheduler sends SIGTERM
  to every process of the job) and are stopped by `close`.
"""

import atexit
import collections
import functools
import itertools
import multiprocessing as mp
import multiprocessing.util  # its exit handler is registered now, so that a pool's runs before it
import os
import signal
import threading
import traceback
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import torch
import torch.multiprocessing  # registers the pickling of tensors as shared memory

from fedsweep.execution.base import WorkerLost
from fedsweep.lifeline import die_with_parent

POLL_S = 0.05  # how often a waiting caller checks that its worker is alive (and can be interrupted)
INTERRUPT = signal.SIGUSR2  # a caller gave up on the job: stop it, the worker serves on
INTERRUPT_WAIT_S = 1.0  # how long an interrupted job may take to stop before its worker is killed
_REFILL_TRIES = 3  # starts of a replacement before its slot is given up (the pool then serves with fewer)


def usable_cpus() -> int:
    """CPUs this process may run on (affinity), capped by a cgroup v2 CPU quota when there is one."""
    cpus = len(os.sched_getaffinity(0))
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


class JobInterrupted(BaseException):
    """Raised in a worker's job when its caller gave up on it (a timeout, a round deadline)."""


def _serve(conn: Connection, torch_threads: int) -> None:
    """A worker's life: answer ("call", fn, args) messages until told to stop or orphaned."""
    die_with_parent()
    for sig in (signal.SIGINT, signal.SIGTERM):  # the main process handles both (fedsweep/interrupt.py)
        signal.signal(sig, signal.SIG_IGN)
    running = [False]

    def interrupt(signum: int, frame: Any) -> None:
        if running[0]:  # between jobs there is nothing to stop
            raise JobInterrupted("the caller gave up on this job")

    signal.signal(INTERRUPT, interrupt)
    torch.set_num_threads(torch_threads)
    while True:
        try:
            _, fn, args = conn.recv()
        except (EOFError, OSError):
            return
        if fn is None:
            return
        running[0] = True
        try:
            try:
                result = fn(*args)
            finally:
                running[0] = False
            reply: tuple = ("ok", result)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("error", exc, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or error
            conn.send(
                ("error", RuntimeError(f"a worker's answer could not be sent back: {exc!r}"), reply[-1])
            )


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Connection
    ready: set[str] = field(default_factory=set)
    spare: bool = False  # started ahead, not serving yet
    answered: bool = False  # it has answered a call: its interruption handler is in place


class WorkerPool:
    """`size` long-lived worker processes, each with `torch_threads` intra-op threads (and `spares`
    from the start, warmed by calling `warm`)."""

    def __init__(
        self, size: int, *, torch_threads: int, spares: int = 0, warm: Callable[[], Any] | None = None
    ) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {size}")
        if torch_threads < 1:
            raise ValueError(f"a worker needs at least one intra-op thread, got {torch_threads}")
        self.size, self.torch_threads = size, torch_threads
        method = "fork" if threading.active_count() == 1 else "spawn"
        self._idle: collections.deque[_Worker] = collections.deque()
        self._freed = threading.Condition()  # notified when a worker becomes idle
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._starter: ThreadPoolExecutor | None = None
        self._setups: dict[str, tuple[Callable, Callable[[], tuple]]] = {}  # what a spare installs
        self._spares: collections.deque[Future[_Worker]] = collections.deque()  # started ahead, oldest first
        self._keep = max(0, spares)  # spares kept ready (one after the first replacement, at least)
        self._warm = warm or os.getpid  # what a spare runs first: the imports its first jobs would pay
        atexit.register(_kill_at_exit, weakref.ref(self))
        for _ in range(size):
            self._put_idle(self._start(method))
        for _ in range(self._keep):
            self._spares.append(self._starter_thread().submit(self._start_spare))

    def _start(self, method: str) -> _Worker:
        if method == "fork":  # only while this is the process's only thread, which lives to the end
            return self._start_now(method)
        return self._starter_thread().submit(self._start_now, method).result()

    def _starter_thread(self) -> ThreadPoolExecutor:
        # PR_SET_PDEATHSIG fires when the *thread* that started a worker ends; task threads come and
        # go, so spawned workers are started by threads that live as long as the pool (an executor's
        # threads are never retired), a few side by side: replacements are mostly waiting on imports.
        with self._lock:
            if self._starter is None:
                name = "fedsweep-worker-starter"
                self._starter = ThreadPoolExecutor(max_workers=self.size + 1, thread_name_prefix=name)
            return self._starter

    def _start_now(self, method: str, *, spare: bool = False) -> _Worker:
        ctx: Any = mp.get_context(method)  # typeshed's BaseContext lacks Process
        mine, theirs = ctx.Pipe()
        process = ctx.Process(
            target=_serve, args=(theirs, self.torch_threads), name="fedsweep-worker", daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(process=process, conn=mine, spare=spare)
        with self._lock:
            if self._closed:  # a spare that finished starting after `close`
                process.kill()
                raise RuntimeError("the worker pool is closed")
            self._workers.append(worker)
        return worker

    def _start_spare(self) -> _Worker:
        """(the starter thread) A spawned worker, warm: imports done, every setup seen so far run."""
        worker = self._start_now("spawn", spare=True)
        try:
            self._ask(worker, self._warm, ())
            for token, (setup_fn, make_args) in list(self._setups.items()):
                self._ask(worker, setup_fn, make_args())
                worker.ready.add(token)
        except BaseException:
            worker.process.kill()
            with self._lock:
                self._workers.remove(worker)
            raise
        return worker

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        setup: tuple[str, Callable, Callable[[], tuple]] | None = None,
    ) -> Any:
        """`fn(*args)` in an idle worker. `setup` is (token, setup_fn, make_args): a worker that has
        not yet run the setup for `token` first runs `setup_fn(*make_args())`."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        taken: list[_Worker] = []
        healthy, asked = False, False
        try:
            while not taken:
                self._take_idle(taken)
            worker = taken[0]
            asked = True
            if setup is not None and setup[0] not in worker.ready:
                token, setup_fn, make_args = setup
                self._setups[token] = (setup_fn, make_args)
                self._ask(worker, setup_fn, make_args())
                worker.ready.add(token)
            result = self._ask(worker, fn, args)
            healthy = True
            return result
        except _Raised as raised:
            healthy = True
            raise raised.error from None
        finally:
            if taken and (healthy or not asked):
                self._put_idle(taken[0])
            elif taken:
                self._recover(taken[0])

    def _take_idle(self, taken: list[_Worker]) -> None:
        """Move an idle worker into `taken`, or wait a moment. A timeout raised into this thread at any
        instruction must not lose a worker: the move is one C call (deque.popleft, list.extend)."""
        with self._freed:
            if self._idle:
                taken.extend(itertools.islice(iter(self._idle.popleft, None), 1))
            else:
                self._freed.wait(POLL_S)  # short waits: an exception raised in this thread lands

    def _put_idle(self, worker: _Worker) -> None:
        with self._freed:
            self._idle.append(worker)
            self._freed.notify()

    def map(self, fn: Callable[..., Any], calls: list[tuple], *, setup: tuple | None = None) -> list[Any]:
        """`fn(*args)` for each args in `calls`, side by side on up to `size` workers; answers in order."""
        if len(calls) <= 1:
            return [self.call(fn, *args, setup=setup) for args in calls]
        with ThreadPoolExecutor(max_workers=min(len(calls), self.size)) as callers:
            futures = [callers.submit(self.call, fn, *args, setup=setup) for args in calls]
            return [f.result() for f in futures]

    def _ask(self, worker: _Worker, fn: Callable, args: tuple) -> Any:
        try:
            worker.conn.send(("call", fn, args))
        except TimeoutError:  # an OSError, but the caller's timeout raised into this thread: not the worker's
            raise
        except OSError as exc:
            raise WorkerLost(
                f"a worker process is gone (exit code {worker.process.exitcode}): {exc!r}"
            ) from None
        while not worker.conn.poll(POLL_S):  # short waits: an exception raised in this thread lands
            if not worker.process.is_alive():
                raise WorkerLost(
                    f"a worker process died during {fn.__name__} (exit code {worker.process.exitcode}); "
                    "if the OS killed it, memory may be short (see runner.memory)"
                )
        try:
            reply = worker.conn.recv()
        except TimeoutError:
            raise
        except (EOFError, OSError) as exc:
            raise WorkerLost(f"a worker process died during {fn.__name__}: {exc!r}") from None
        worker.answered = True
        if reply[0] == "error":
            error, trace = reply[1], reply[2]
            error.add_note(f"in worker process {worker.process.pid}:\n{trace}")
            raise _Raised(error)
        return reply[1]

    def _recover(self, worker: _Worker) -> None:
        """Its caller gave up on a worker's job: interrupt the job; the worker serves on if it
        answers within INTERRUPT_WAIT_S (the answer is dropped), else it is killed and replaced."""
        if worker.answered and worker.process.is_alive():  # one still starting dies of the signal
            try:
                os.kill(worker.process.pid, INTERRUPT)
                if worker.conn.poll(INTERRUPT_WAIT_S):
                    worker.conn.recv()
                    self._put_idle(worker)
                    return
            except (OSError, EOFError):
                pass
        self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker that may be stuck or is dead, without waiting for its replacement: a warm
        spare serves at once (the first ready); else the slot is refilled by the oldest spare still
        starting, or by a spawn, when it is ready. Another spare starts in the background."""
        worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()
        starter = self._starter_thread()
        with self._lock:  # two callers cut at once must not take the same spare
            self._workers.remove(worker)
            usable = [f for f in self._spares if not (f.done() and f.exception() is not None)]
            ready = [f for f in usable if f.done()]
            spare = (ready or usable or [starter.submit(self._start_spare)])[0]
            self._spares = collections.deque(f for f in usable if f is not spare)
            while len(self._spares) < max(1, self._keep):
                self._spares.append(starter.submit(self._start_spare))
        spare.add_done_callback(functools.partial(self._serve_from, tries=_REFILL_TRIES))

    def _serve_from(self, started: "Future[_Worker]", *, tries: int) -> None:
        """A started spare joins the idle workers; one that failed to start is started again."""
        if started.exception() is None:
            worker = started.result()
            worker.spare = False
            self._put_idle(worker)
        elif tries > 1 and not self._closed:
            again = self._starter_thread().submit(self._start_spare)
            again.add_done_callback(functools.partial(self._serve_from, tries=tries - 1))

    def spare_pid(self) -> int | None:
        """The pid of the first warm spare (None without one, or while they start)."""
        pids = self.spare_pids()
        return pids[0] if pids else None

    def spare_pids(self) -> list[int]:
        """The pids of the warm spares (those started and not serving yet)."""
        with self._lock:
            spares = list(self._spares)
        ready = [f.result() for f in spares if f.done() and f.exception() is None]
        return [worker.process.pid for worker in ready if worker.spare]

    def close(self) -> None:
        """Stop every worker (idle ones are asked, busy or stuck ones killed)."""
        self._closed = True
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            try:
                worker.conn.send(("stop", None, ()))
            except OSError:
                pass
        for worker in workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        if self._starter is not None:
            self._starter.shutdown(wait=False)

    def pids(self) -> list[int]:
        """The pids of the workers that serve calls (not the spare)."""
        with self._lock:
            return [w.process.pid for w in self._workers if not w.spare]


def _kill_at_exit(ref: "weakref.ref[WorkerPool]") -> None:
    """At the interpreter's exit, kill the pool's workers still alive. multiprocessing would stop them
    with SIGTERM and wait, but workers ignore SIGTERM; this runs first (atexit is last in, first out)."""
    pool = ref()
    if pool is None:
        return
    with pool._lock:
        workers = list(pool._workers)
    for worker in workers:
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()


class _Raised(Exception):
    """A worker's own exception, carried past `call`'s bookkeeping (the worker stays healthy)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
