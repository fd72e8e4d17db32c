"""Committing rounds off the training path: the checkpoint task, then what follows a commit (the
round's MLflow metrics), one round in flight at most.

After round r is aggregated and evaluated, the round hands its state to `RoundCommitter.submit` and
the next round starts at once. A background thread (fedsweep.checkpoint.writer) runs the
`checkpoint` task and then `after_commit` (the round's row); the next round's `drain` first waits,
with a bound, for round r's commit, so at most one is in flight and a slow disk applies
back-pressure instead of piling up memory. A failed commit is retried, reported, and superseded by
the next round's; `finish` retries the last one in the foreground so the final state is on disk
before the run is marked FINISHED.
"""

import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from fedsweep.cell.cell import Cell
from fedsweep.checkpoint.writer import BackgroundWriter
from fedsweep.rounds.state import CellState
from tasks.checkpoint import commit_round

log = logging.getLogger("fedsweep")


class RoundCommitter:
    """Checkpoint jobs for one cell, run by one background writer; `after_commit(row)` follows each."""

    def __init__(self, cell: Cell, *, after_commit: Callable[[dict[str, Any]], None] | None = None) -> None:
        settings = cell.settings.checkpoint
        self.cell, self.after_commit, self.background = cell, after_commit, settings.background
        self.writer = BackgroundWriter(max_retries=settings.write_retries, timeout_s=settings.write_timeout_s)
        self.last: CellState | None = None

    def drain(self) -> float:
        """Wait (bounded) for the previous round's commit; returns the seconds the loop waited.

        This wait is checkpointing's whole cost on the training path (`checkpoint_wait_seconds`).
        """
        tick = time.perf_counter()
        self.writer.flush(self.writer.timeout_s)
        return time.perf_counter() - tick

    def writing(self) -> bool:
        """Whether a submitted round may still be being written (after a `drain` that timed out)."""
        return self.writer.busy()

    def submit(self, state: CellState) -> None:
        """Commit round `state.round`: in the background, or here when `checkpoint.background=false`."""
        self.last = state
        if self.background:
            context = contextvars.copy_context()  # task runs stay attached to this flow run
            self.writer.submit(lambda: context.run(self._commit, state))
        else:
            self._commit(state)

    def finish(self) -> None:
        """Wait for the last commit; if it failed, retry it here (raising if it still fails)."""
        committed = self.writer.flush()
        self.writer.close()
        if not committed and self.last is not None:
            log.warning("the last checkpoint did not commit in the background; retrying in the foreground")
            self._commit(self.last)

    def _commit(self, state: CellState) -> None:
        commit_round(self.cell, state.round, state)
        if self.after_commit is not None:
            self.after_commit(state.history[-1])
