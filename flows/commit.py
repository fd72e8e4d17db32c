"""Committing rounds off the training path: checkpoint, then MLflow, one round in flight at most.

After round r is aggregated and evaluated, the loop hands the round to `RoundCommitter.submit` and
starts round r+1 at once. A background thread (fedsweep.checkpoint.writer) runs the `checkpoint`
task and then logs the round to MLflow; `submit` first waits, with a bound, for round r-1's commit,
so at most one is in flight and a slow disk applies back-pressure instead of piling up memory. A
failed commit is retried, reported, and superseded by the next round's; `finish` retries the last
one in the foreground so the final state is on disk before the run is marked FINISHED.
"""

import contextvars
import logging
import time
from typing import Any

from fedsweep.checkpoint.cellstate import CellState
from fedsweep.checkpoint.writer import BackgroundWriter
from fedsweep.config.schema import CheckpointSettings
from tasks import track
from tasks.checkpoint import commit_round

log = logging.getLogger("fedsweep")


class RoundCommitter:
    """Checkpoint + track jobs for one cell, run by one background writer."""

    def __init__(
        self, *, cell_dir: str, uri: str | None, run_id: str | None, logged: int, settings: CheckpointSettings
    ) -> None:
        self.cell_dir, self.uri, self.run_id, self.logged = cell_dir, uri, run_id, logged
        self.background = settings.background
        self.writer = BackgroundWriter(max_retries=settings.write_retries, timeout_s=settings.write_timeout_s)
        self.last: CellState | None = None

    def log_missing(self, history: tuple[dict[str, Any], ...]) -> None:
        """Rounds committed before a crash but not yet in MLflow (a kill between the two steps)."""
        for metrics in history:
            self._log(metrics)

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
        commit_round(self.cell_dir, state.round, state)
        self._log(state.history[-1])

    def _log(self, metrics: dict[str, Any]) -> None:
        rnd = int(metrics["round"])
        if self.run_id and rnd > self.logged:
            track.log_round(
                self.uri, self.run_id, rnd, {k: float(v) for k, v in metrics.items() if k != "round"}
            )
            self.logged = rnd
