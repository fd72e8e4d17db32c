"""What hooks into a cell's round loop, after pfl-research's `TrainingProcessCallback`: the loop
(flows/cell_flow.py) calls them at fixed points and they never call the loop back.

- `on_start(state)` once the cell's state is resumed; `before_round(rnd, parallel)` before each
  round: returns how many clients may train at once (a callback may lower it) or raises `CellStopped`
  to stop the cell cleanly (everything up to the previous round is committed; re-running resumes);
  `after_round(state)` once the round is handed to the committer; `on_end(state, status, final)`
  once, with FINISHED, STOPPED or FAILED and, when FINISHED, the final weights' sha256 and bytes.
- Implemented here: Ctrl-C and SIGTERM (`Interrupts`), the memory guard (`MemoryLimit`), the
  terminal's progress bar (`ProgressBar`) and the cell's MLflow run (`MlflowRun`, which also logs each
  committed round). The Prefect UI's side is `CellStory` (flows/artifacts.py).
"""

import logging
from typing import Any

import yaml
from tqdm import tqdm

from fedsweep import summary
from fedsweep.cell.cell import Cell
from fedsweep.interrupt import StopRequested, stop_requested
from fedsweep.memory.guard import guard_from_config
from fedsweep.rounds.state import CellState
from tasks import track

log = logging.getLogger("fedsweep")
Final = tuple[str, bytes] | None  # (final_weights_sha256, safetensors bytes) of a FINISHED cell


class CellStopped(Exception):
    """A clean stop before a round: its `level` is the log level of its one line."""

    level = logging.INFO


class MemoryLimitReached(CellStopped):
    """The memory guard's stop level: the last round is committed, the sweep stops cleanly."""

    level = logging.WARNING


class Stopped(CellStopped, StopRequested):
    """Ctrl-C or SIGTERM (fedsweep/interrupt.py): the last round is committed."""


class CellCallback:
    """Hooks of a cell's round loop (see the module docstring); every hook does nothing by default."""

    def on_start(self, state: CellState) -> None:
        pass

    def before_round(self, rnd: int, parallel: int) -> int:
        return parallel

    def after_round(self, state: CellState) -> None:
        pass

    def on_end(self, state: CellState, status: str, final: Final) -> None:
        pass


class Interrupts(CellCallback):
    """Ctrl-C or SIGTERM: stop before the next round."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def before_round(self, rnd: int, parallel: int) -> int:
        if stop_requested():
            raise Stopped(f"stopped after round {rnd - 1} of {self.rounds}")
        return parallel


class MemoryLimit(CellCallback):
    """The memory guard (`runner.memory`): a warning line, fewer clients at once, or a clean stop."""

    def __init__(self, cell: Cell) -> None:
        self.name, self.guard = cell.name, guard_from_config(cell.runner.memory.model_dump())

    def before_round(self, rnd: int, parallel: int) -> int:
        memory = self.guard.check()
        if memory.level == "stop":
            raise MemoryLimitReached(memory.message)
        if memory.level != "ok":
            log.warning("%s round %d: %s", self.name, rnd, memory.message)
        return self.guard.allowed_parallel(parallel, memory)


class ProgressBar(CellCallback):
    """One tqdm bar per cell: rounds done, the last accuracy and what failed so far."""

    def __init__(self, cell: Cell) -> None:
        self.name, self.rounds, self.shown = cell.name, cell.knobs.rounds, cell.runner.progress
        self.bar: Any = None

    def on_start(self, state: CellState) -> None:
        disable = not self.shown or state.round >= self.rounds
        self.bar = tqdm(total=self.rounds, initial=state.round, desc=self.name, unit="round", disable=disable)

    def after_round(self, state: CellState) -> None:
        self.bar.set_postfix(summary.postfix(state.history))
        self.bar.update(1)

    def on_end(self, state: CellState, status: str, final: Final) -> None:
        if self.bar is not None:
            self.bar.close()


class MlflowRun(CellCallback):
    """The cell's MLflow child run: found again or created, each committed round logged once (its
    step not there yet), ended FINISHED with the final weights, KILLED or FAILED."""

    def __init__(self, cell: Cell, tracking: dict[str, Any], params: dict[str, Any]) -> None:
        self.cell, self.uri = cell, tracking.get("uri")
        self.run_id: str | None = None
        self.logged, self.status = 0, None
        if self.uri:
            self.run_id, self.logged, self.status = track.open_cell_run(
                self.uri,
                tracking["experiment_id"],
                tracking["parent_run_id"],
                cell.name,
                cell.key,
                params,
                rounds=cell.knobs.rounds,
            )

    def on_start(self, state: CellState) -> None:
        for row in state.history:  # rounds committed before a crash but not yet logged
            self.log_round(row)

    def log_round(self, row: dict[str, Any]) -> None:
        """Log a committed round's metrics (the committer calls this after each commit)."""
        rnd = int(row["round"])
        if self.run_id and rnd > self.logged:
            track.log_round(self.uri, self.run_id, rnd, {k: float(v) for k, v in row.items() if k != "round"})
            self.logged = rnd

    def on_end(self, state: CellState, status: str, final: Final) -> None:
        if not self.run_id:
            return
        if status != "FINISHED":
            track.finish_run(self.uri, self.run_id, "KILLED" if status == "STOPPED" else "FAILED", {}, {})
        elif self.status != "FINISHED" and final is not None:
            sha, weights = final
            config = yaml.safe_dump(self.cell.config, sort_keys=False).encode()
            files = {"config.yaml": config, "model/final.safetensors": weights}
            track.finish_run(self.uri, self.run_id, "FINISHED", {"final_weights_sha256": sha}, files)
