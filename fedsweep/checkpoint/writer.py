"""Checkpoint writes off the training loop's thread, with back-pressure and bounded waits.

Rules:

- **One thread, at most one job in flight.** `submit(job)` first waits for the previous job to
  finish, at most `timeout_s`: a slow disk slows training down instead of queueing checkpoints in
  memory. If the wait times out (a hung filesystem), the job is parked as the single *pending* job;
  a newer submit replaces a pending one that has not started (its write would be superseded
  anyway), so memory holds at most two jobs' data whatever happens.
- **Failures are reported, never raised into the training loop.** A failing job is retried
  `max_retries` times with a short exponential backoff (fewer if a newer job is already waiting:
  the newer checkpoint supersedes it); then it is logged as one warning line and kept in `.errors`.
- **The newest job decides.** `flush()` returns True when nothing is running or pending and the
  newest job succeeded: a failed older write does not matter once a newer one committed.
- **Every wait has a bound** (`flush`, `close` and `submit` take one); the worker is a daemon
  thread, so a write stuck in the kernel cannot keep the process alive.

Jobs must own their data: submit a closure over tensors that the loop no longer mutates.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Self

Job = Callable[[], object]
log = logging.getLogger(__name__)


class BackgroundWriter:
    """Runs write jobs one at a time on a background thread."""

    def __init__(self, *, max_retries: int = 2, timeout_s: float = 60.0, backoff_s: float = 0.2) -> None:
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError("checkpoint.write_retries must be >= 0 and checkpoint.write_timeout_s > 0")
        self.max_retries, self.timeout_s, self.backoff_s = max_retries, timeout_s, backoff_s
        self.errors: deque[BaseException] = deque(maxlen=100)  # reported failures, oldest dropped
        self.last_error: BaseException | None = None  # of the newest finished job
        self._cv = threading.Condition()
        self._pending: Job | None = None
        self._running = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="fedsweep-checkpoint-writer", daemon=True)
        self._thread.start()

    def _idle(self) -> bool:
        return self._pending is None and not self._running

    def submit(self, job: Job) -> bool:
        """Queue `job` after the previous one; False if that one was still busy after `timeout_s`."""
        with self._cv:
            if self._closed:
                raise RuntimeError("BackgroundWriter.submit after close()")
            in_time = self._cv.wait_for(self._idle, timeout=self.timeout_s)
            if not in_time:
                log.warning("checkpoint write still running after %.0f s; the next one waits", self.timeout_s)
            if self._pending is not None:
                log.warning("checkpoint write superseded by a newer one before it started")
            self._pending = job
            self._cv.notify_all()
            return in_time

    def busy(self) -> bool:
        """Whether a job is running or waiting to run (its inputs may still be read)."""
        with self._cv:
            return not self._idle()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait (bounded) for every submitted job; True if done and the newest one succeeded."""
        with self._cv:
            done = self._cv.wait_for(self._idle, timeout=self.timeout_s if timeout_s is None else timeout_s)
            return done and self.last_error is None

    def close(self, timeout_s: float | None = None) -> bool:
        """Flush (bounded), then stop the thread; the result is `flush`'s."""
        ok = self.flush(timeout_s)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=1.0)  # prompt when idle; a hung job was already waited for above
        return ok

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None:
                    if self._closed:
                        return
                    self._cv.wait(timeout=1.0)  # woken by submit/close; the timeout is a safety net
                job, self._pending, self._running = self._pending, None, True
            error = self._attempt(job)
            with self._cv:
                self._running, self.last_error = False, error
                if error is not None:
                    self.errors.append(error)
                self._cv.notify_all()

    def _attempt(self, job: Job) -> BaseException | None:
        for attempt in range(1, self.max_retries + 2):
            try:
                job()
                return None
            except Exception as exc:  # noqa: BLE001 - reported below, never raised into training
                error = exc
            with self._cv:
                superseded = self._pending is not None
            if attempt > self.max_retries or superseded:
                break
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        log.warning(
            "checkpoint write failed after %d attempt(s)%s: %s: %s",
            attempt,
            " (superseded by a newer write)" if superseded else "",
            type(error).__name__,
            error,
        )
        return error
