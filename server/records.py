"""A sweep's records in Prefect, off the training path, and one line in the terminal when they are late.

Prefect's records of a sweep (flow runs, task runs, logs, artifacts) never hold up its training:

- Task runs and logs already leave the sweep's process in the background (Prefect's events and log
  workers). Artifacts (a cell's progress bar and table, the sweep's summary) go through `submit`:
  one writer thread sends them in order, each call with Prefect's client retries, and a record that
  cannot be sent is one line, never a failed cell.
- What does wait on the API (a cell's flow run starting or ending, the sweep's, the final flush of
  task runs and logs) is registered with `wait(what, blocks)` / `done(token)`; `blocks()` says
  whether training waits for it right now (cells start one ahead of their turn: flows/sweep_flow.py).
- The watch (one daemon thread) prints one line when a record has been waiting over DELAY_S, with
  the reason, e.g.

      records delayed: Prefect server busy (database is locked); training goes on

  then, while training itself waits for the server, a line every REMIND_S seconds, and once nothing
  is late any more, `records caught up after 42 s`. The reason is what Prefect's client logged about
  its retries (an HTTP 503, a timeout) or what fedsweep's own server says (server/process.py's
  /fedsweep/busy), else "slow to answer".
- The sweep's start-up and wrap-up steps (the server's boot, the data, MLflow's database; the
  sweep's plots, the last task runs) are `wait(what, phase="starting" | "finishing")`: the watch
  says `starting (7 s): waiting for MLflow's database` whenever the phase has gone DELAY_S without
  a line, however short each step, so the terminal is not silent through several of them.
"""

import contextlib
import contextvars
import itertools
import json
import logging
import queue
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DELAY_S = 5.0  # a record waiting longer is announced
REMIND_S = 8.0  # while training waits for the server, a line this often (the terminal is never silent)
_RETRY = re.compile(r"retryable (?:status code (\d+)|exception).*?made in ([\d.]+)s", re.DOTALL)


_START_LINE: list[float] = []  # when the sweep's start-up line was printed (cli/preview.py)


def start_line_printed() -> None:
    """The terminal's last line before the start-up's steps: their phase's silence counts from it
    (the watch itself starts only once Prefect is imported, seconds later on a loaded machine)."""
    _START_LINE[:] = [time.monotonic()]


def say(line: str) -> None:
    """One plain line on stderr, above the progress bars (which tqdm redraws below it)."""
    from tqdm import tqdm  # noqa: PLC0415 - only when a line is said

    tqdm.write(line, file=sys.stderr)


class _Retries(logging.Filter):
    """On Prefect's client logger: notes its retry messages (DEBUG) and lets through only what the
    logger showed before (its level, INFO by default)."""

    def __init__(self, shown_from: int) -> None:
        super().__init__()
        self.shown_from = shown_from
        self.last: tuple[float, str] | None = None  # (when, what the server answered)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            found = _RETRY.search(record.getMessage())
            if found:
                error = record.exc_info[1] if record.exc_info else None
                what = f"HTTP {found.group(1)}" if found.group(1) else type(error).__name__
                self.last = (time.monotonic(), f"{what}, next try in {float(found.group(2)):.0f} s")
        return record.levelno >= self.shown_from


@dataclass
class _Wait:
    what: str
    since: float
    blocks: Callable[[], bool]
    phase: str = ""  # "starting" / "finishing": a step of the sweep's start-up or wrap-up, not a record


class Records:
    """The process's writer of Prefect records and the watch over everything waiting on the API."""

    def __init__(
        self,
        *,
        announce: Callable[[str], None] = say,
        api_url: str | None = None,
        client: Callable[[], Any] | None = None,
        watch: bool = True,
    ) -> None:
        """`client()`: the writer's API client, made on its first record (Prefect's sync client);
        `watch=False`: no watch thread (`check` is called by hand)."""
        self.announce, self.api_url, self._client = announce, api_url, client or _prefect_client
        self._waits: dict[int, _Wait] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[int, str, Callable[[Any], Any]] | None] = queue.Queue()
        self._retries = _install_retry_filter()
        self._late_since: float | None = None  # the current episode of late records
        self._reminded = 0.0
        self.ending = False  # the sweep's rounds are over: what is late holds up only its exit
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None  # started by the first record
        self._drain_by: float | None = None  # when `drain` stops waiting for the writer
        self._began: dict[str, float] = {}  # phase -> when its first step began
        self._said: dict[str, float] = {}  # phase -> when it began, or its last line
        self._job = float("-inf")  # the start-up line of the job whose phases these are
        self._watch = threading.Thread(target=self._watch_loop, name="fedsweep-records-watch", daemon=True)
        if watch:
            self._watch.start()

    # -- what waits on the API ------------------------------------------------------------------
    def wait(self, what: str, blocks: Callable[[], bool] = lambda: True, *, phase: str = "") -> int:
        """Register something waiting on Prefect's API (`blocks()`: does training wait for it now?),
        or with `phase` ("starting", "finishing"), a step of the sweep's start-up (the server's boot,
        the data) or wrap-up (its plots, the last records). A phase's steps are said together: a
        line once the phase has gone DELAY_S without one, whatever each step's own length."""
        token = next(self._ids)
        now = time.monotonic()
        with self._lock:
            self._waits[token] = _Wait(what, now, blocks, phase)
            line = _START_LINE[0] if _START_LINE else None
            if line is not None and line > self._job:  # a new job of the command (`-m`): new phases
                self._job = line
                self._began.clear()
                self._said.clear()
            if phase and phase not in self._began:
                start = line if phase == "starting" and line is not None else now  # the line came first
                self._began[phase] = self._said[phase] = start
        return token

    def done(self, token: int) -> None:
        with self._lock:
            self._waits.pop(token, None)

    def submit(self, what: str, call: Callable[[Any], Any]) -> None:
        """`call(client)` in the writer thread, after what was submitted before (a sync Prefect
        client, with the Prefect settings of the first submitter: its retries, its API)."""
        with self._lock:
            if self._writer is None:
                context = contextvars.copy_context()
                self._writer = threading.Thread(
                    target=context.run, args=(self._write,), name="fedsweep-records", daemon=True
                )
                self._writer.start()
        self._queue.put((self.wait(what, lambda: False), what, call))

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until what was submitted is sent, the watch still on (the sweep's wrap-up); False if
        some is left unsent after `timeout_s`, counted from the first call: a later call (`finish`)
        waits only what is left of it. Nothing may be submitted after it."""
        if self._writer is None:
            return True
        if self._drain_by is None:
            self._drain_by = time.monotonic() + timeout_s
            self._queue.put(None)
        self._writer.join(max(0.0, self._drain_by - time.monotonic()))
        return not self._writer.is_alive()

    def finish(self, timeout_s: float = 30.0) -> bool:
        """Wait (bounded, as `drain`) until what was submitted is sent, then stop the watch; False if
        some is left unsent."""
        sent = self.drain(timeout_s)
        self._stop.set()
        if self._watch.is_alive():
            self._watch.join(2.0)
        return sent

    # -- the writer -----------------------------------------------------------------------------
    def _write(self) -> None:
        with contextlib.ExitStack() as stack:
            client = None
            while (item := self._queue.get()) is not None:
                token, what, call = item
                try:
                    client = client or stack.enter_context(self._client())
                    call(client)
                except Exception as err:  # noqa: BLE001 - a record is not worth a cell
                    self.announce(f"records: {what} not recorded in Prefect ({_short(err)})")
                finally:
                    self.done(token)

    # -- the watch ------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        while not self._stop.wait(1.0):
            self.check()

    def check(self, now: float | None = None) -> None:
        """One look at what waits (the watch calls it every second)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = list(self._waits.values())
        for phase in sorted({w.phase for w in waits if w.phase}):
            if now - self._said[phase] > DELAY_S:  # silent that long since the phase began or its line
                self._said[phase] = now
                steps = [w for w in waits if w.phase == phase]
                self.announce(f"{phase} ({now - self._began[phase]:.0f} s): waiting for {_oldest(steps)}")
        waits = [w for w in waits if not w.phase]
        late = [w for w in waits if now - w.since > DELAY_S]
        if not late:
            if self._late_since is not None:
                self.announce(f"records caught up after {now - self._late_since:.0f} s")
                self._late_since = None
            return
        # What something waits for: training (a cell's flow run not started yet), or the sweep's exit.
        blocked = [w for w in late if self.ending or _safe(w.blocks)]
        waiter = "the sweep's end" if self.ending else "training"
        if self._late_since is None:
            self._late_since = min(w.since for w in late)
            self._reminded = now
            effect = f"{waiter} waits for {_oldest(blocked)}" if blocked else "training goes on"
            self.announce(f"records delayed: Prefect server {self.reason(now)}; {effect}")
        elif blocked and now - self._reminded >= REMIND_S:
            self._reminded = now
            self.announce(
                f"records delayed {now - self._late_since:.0f} s: {waiter} waits for {_oldest(blocked)}; "
                f"Prefect server {self.reason(now)}"
            )

    def reason(self, now: float) -> str:
        """Why the server is late: its own word, else what Prefect's client saw, else slowness."""
        busy = _ask_busy(self.api_url)
        if busy is not None and busy.get("last_refusal_s") is not None and busy["last_refusal_s"] < 30:
            return f"busy ({busy.get('reason', 'database is locked')})"
        last = self._retries.last if self._retries else None
        if last is not None and now - last[0] < 60:
            return f"busy ({last[1]})"
        return "slow to answer"


def _prefect_client() -> Any:
    from prefect.client.orchestration import get_client  # noqa: PLC0415 - Prefect: on first use

    return get_client(sync_client=True)


def _oldest(waits: list[_Wait]) -> str:
    return min(waits, key=lambda w: w.since).what


def _safe(blocks: Callable[[], bool]) -> bool:
    try:
        return bool(blocks())
    except Exception:  # noqa: BLE001 - a question for the terminal's line only
        return False


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:160]}" if text else type(err).__name__


def _ask_busy(api_url: str | None) -> dict[str, Any] | None:
    """fedsweep's server's own answer (server/process.py's /fedsweep/busy); None from any other."""
    if not api_url:
        return None
    root = api_url.rstrip("/").removesuffix("/api")
    try:
        with urllib.request.urlopen(f"{root}/fedsweep/busy", timeout=1.0) as reply:
            body = json.loads(reply.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _install_retry_filter() -> _Retries | None:
    """Listen to Prefect's client's retry messages (DEBUG) without showing them."""
    logger = logging.getLogger("prefect.client")
    for existing in logger.filters:
        if isinstance(existing, _Retries):
            return existing
    retries = _Retries(shown_from=logger.getEffectiveLevel())
    logger.addFilter(retries)
    logger.setLevel(logging.DEBUG)
    return retries


_records: Records | None = None
_records_lock = threading.Lock()


def records() -> Records:
    """The process's records (started on first use, with the caller's Prefect settings)."""
    global _records  # noqa: PLW0603 - one writer and one watch per process
    with _records_lock:
        if _records is None:
            from prefect.settings import PREFECT_API_URL  # noqa: PLC0415 - Prefect: on first use

            _records = Records(api_url=PREFECT_API_URL.value())
        return _records


def finish_records(timeout_s: float = 30.0) -> None:
    """Send what is left (bounded) and stop; a later `records()` starts afresh."""
    global _records
    with _records_lock:
        current, _records = _records, None
    if current is not None and not current.finish(timeout_s):
        say(f"records: some Prefect artifacts were not sent within {timeout_s:g} s")
