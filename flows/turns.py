"""Which cells of a sweep start and train now, so that Prefect's API never holds up training.

A cell is a Prefect flow run of its own, and starting or ending one is a few round trips to the API:
a fraction of a second, or as long as a busy server takes. So the sweep starts a cell's flow run
ahead of its turn, while another cell trains:

- **Admission.** Cells start their flow runs in the grid's order, at most one more than train
  (`admit`, `trained`); the one started ahead waits in its flow run for its turn.
- **Turns.** At most `width` cells (`runner.parallel_cells`) train at once; a free turn goes to the
  first cell in the grid's order whose flow run is ready: one whose flow run is slow to start does
  not hold up the next.
- **Take-over.** If training has had a free turn for STARVE_S seconds and no cell is ready (the
  server has not answered the next cell's start), that cell trains anyway, under the sweep's flow run
  (`watch`; after one take-over, the next comes after STARVE_AGAIN_S): a jammed server delays the
  records, not the training. Its flow run, once started, ends
  with the cell's outcome. Whoever begins a cell first (its flow run, the take-over, or the fallback
  of a flow run that could not start at all) trains it: `CellStart.begin`.
- `halt()` (a stopped or lost cell) and Ctrl-C / SIGTERM turn the waiting cells away (NOT RUN).
"""

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fedsweep.interrupt import stop_requested

STARVE_S = 5.0  # a free turn no ready cell took for this long: the next cell trains without its flow run
STARVE_AGAIN_S = 1.0  # the same, within AGAIN_S of the last take-over (the server is still jammed)
AGAIN_S = 30.0


class Turns:
    """Admission and turns of a sweep's cells (see the module docstring)."""

    def __init__(self, width: int) -> None:
        self.width = max(1, width)
        self._next = 0  # the next cell in the grid's order to start its flow run
        self._started = 0  # cells admitted that have not finished training
        self._ready: set[int] = set()
        self._training = 0
        self._changed = threading.Condition()
        self._starting: dict[int, CellStart] = {}
        self.halted = threading.Event()

    def _stopped(self) -> bool:
        return self.halted.is_set() or stop_requested()

    def admit(self, index: int) -> bool:
        """Wait until cell `index` may start its flow run; False when the sweep stopped first."""
        with self._changed:
            while index != self._next or self._started > self.width:
                if self._stopped():
                    return False
                self._changed.wait(0.2)
            self._next += 1
            self._changed.notify_all()
            if self._stopped():
                return False
            self._started += 1
            return True

    def starting(self, start: "CellStart") -> None:
        """An admitted cell whose flow run is being started (a candidate for the take-over)."""
        with self._changed:
            self._starting[start.index] = start

    def trained(self) -> None:
        """An admitted cell is done training (or will not train): the next may start its flow run."""
        with self._changed:
            self._started -= 1
            self._changed.notify_all()

    @contextmanager
    def turn(self, index: int) -> Iterator[bool]:
        """Wait for cell `index`'s turn; yields False when the sweep stopped first (it must not run)."""
        granted = self._wait(index)
        try:
            yield granted
        finally:
            if granted:
                with self._changed:
                    self._training -= 1
                    self._changed.notify_all()

    def _wait(self, index: int) -> bool:
        with self._changed:
            self._ready.add(index)
            try:
                while self._training >= self.width or index != min(self._ready):
                    if self._stopped():
                        return False
                    self._changed.wait(0.2)
                if self._stopped():
                    return False
                self._training += 1
                return True
            finally:
                self._ready.discard(index)
                self._changed.notify_all()

    def starved(self) -> bool:
        """A turn is free and no ready cell takes it: training waits for a cell's flow run."""
        with self._changed:
            return self._training < self.width and not self._ready

    def halt(self) -> None:
        self.halted.set()
        with self._changed:
            self._changed.notify_all()

    def watch(self, take_over: Callable[["CellStart"], None], done: threading.Event) -> None:
        """Until `done`: give a cell whose flow run is late to start to `take_over` (in a thread of
        its own, with this thread's context) once a turn has been free for STARVE_S seconds."""
        starved_since: float | None = None
        last_take_over = -AGAIN_S
        while not done.wait(0.25):
            with self._changed:
                late = [s for s in self._starting.values() if not s.began]
                starved = self._training < self.width and not self._ready and bool(late)
            if not starved or self._stopped():
                starved_since = None
                continue
            now = time.monotonic()
            starved_since = starved_since or now
            patience = STARVE_AGAIN_S if now - last_take_over < AGAIN_S else STARVE_S
            if now - starved_since < patience:
                continue
            starved_since = None
            first = min(late, key=lambda s: s.index)
            if first.begin():
                last_take_over = now
                context = contextvars.copy_context()
                threading.Thread(target=context.run, args=(take_over, first), daemon=True).start()


@dataclass
class CellStart:
    """One cell's start: its turn, who began it, how it ended; shared by its flow run, the take-over
    and the fallback of a flow run that could not start."""

    turns: Turns
    index: int
    waiting: int  # the records token of "its flow run is starting" (server/records.py)
    key: str = ""
    ending: int | None = None  # the records token of "its flow run is ending"
    taken_over: bool = False  # trained under the sweep's flow run, its own late to start
    _began: bool = False
    _trained: bool = False
    _outcome: Any = None
    _finished: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def began(self) -> bool:
        return self._began

    def begin(self) -> bool:
        """True for the first caller only: it trains the cell and must call `finish`."""
        with self._lock:
            if self._began:
                return False
            self._began = True
            return True

    def finish(self, outcome: Any) -> None:
        self._outcome = outcome
        self._finished.set()

    def outcome(self) -> Any:
        """The cell's row or end state, once whoever began it has finished."""
        self._finished.wait()
        return self._outcome

    def done_training(self) -> None:
        """Once: the next cell may start its flow run."""
        with self._lock:
            if self._trained:
                return
            self._trained = True
        self.turns.trained()
