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
from fedsweep.rounds.report import QUIET_WHILE_CONSTANT, charted_points, constants
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
    step not there yet), ended FINISHED with the final weights, KILLED or FAILED.

    What it charts (fedsweep/rounds/report.py `charted_points`): every round's metrics but those with
    no news yet (a failure counter still at 0, a per-round constant such as `bytes_down`), which join
    the charts, earlier rounds included, once they move; a constant that never moved is a tag of the
    run (its value). A FINISHED run also gets its summary: `final_accuracy`, `best_accuracy` and
    `rounds` (step = its last round), what the runs table can show as columns."""

    def __init__(self, cell: Cell, tracking: dict[str, Any], params: dict[str, Any]) -> None:
        self.cell, self.uri = cell, tracking.get("uri")
        self.run_id: str | None = None
        self.logged, self.status = 0, None
        self.history: list[dict[str, Any]] = []
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
        self.history = []
        for row in state.history:  # rounds committed before a crash but not yet logged
            self.log_round(row)

    def log_round(self, row: dict[str, Any]) -> None:
        """Log a committed round's metrics (the committer calls this after each commit)."""
        rnd = int(row["round"])
        if not self.history or rnd > int(self.history[-1]["round"]):
            self.history.append({k: float(v) for k, v in row.items()})
        if self.run_id and rnd > self.logged:
            track.log_points(self.uri, self.run_id, charted_points(self.history))
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
            row = summary.cell_row(self.cell.name, status, state.history, rounds_run=0)
            metrics = {k: row[k] for k in ("final_accuracy", "best_accuracy", "rounds")}
            still = constants(self.history)
            tags = {"final_weights_sha256": sha, **{k: f"{v:g}" for k, v in still.items()}}
            track.drop_tags(self.uri, self.run_id, [k for k in QUIET_WHILE_CONSTANT if k not in still])
            track.finish_run(
                self.uri, self.run_id, "FINISHED", tags, files, metrics=metrics, step=state.round
            )
