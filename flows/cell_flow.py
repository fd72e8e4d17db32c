"""The cell flow: one FL experiment, its rounds one after another (flows/round.py), resumed from its
last committed round.

The flow receives the cell's compact view (flows/view.py: what the Prefect UI shows as parameters)
and runs the registered cell of its key (`register`, called by the command line before the sweep
flow starts). `run_cell` is the loop itself: resume, then for each round the callbacks' checks
(flows/callbacks.py), the round, the callbacks' updates; the committer writes each round in the
background and the last one in the foreground before the cell is FINISHED.

A failure ends the flow run in a Failed state carrying its one-line reason: Prefect then neither logs
an engine traceback nor persists the exception (as a pickle) among the sweep's results. A stop
(Ctrl-C, SIGTERM, the memory guard) ends it Cancelled, carrying the STOPPED row. A lost engine (a Dask
scheduler gone) ends the cell LOST.
"""

import logging
import time
from typing import Any

import psutil
from prefect import flow, tags
from prefect.context import TagsContext
from prefect.states import Cancelled, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from fedsweep import execution, summary
from fedsweep.cell.cell import Cell, open_cell
from fedsweep.checkpoint.storage import CheckpointError
from fedsweep.interrupt import wrapping_up
from fedsweep.rounds.policy import CellFailed
from fedsweep.rounds.state import CellState, final_model, resume
from flows import view
from flows.artifacts import CellStory
from flows.callbacks import CellCallback, CellStopped, Interrupts, MemoryLimit, MlflowRun, ProgressBar
from flows.commit import RoundCommitter
from flows.round import play_round

log = logging.getLogger("fedsweep")
# A cell that ends for one of these reasons says so in one line; any other exception is a bug and
# gets its traceback.
KNOWN_FAILURES = (CheckpointError, CellFailed)
_PLANNED: dict[str, dict[str, Any]] = {}  # cell key -> the planned cell (name, key, dir, config, params)


def register(cells: list[dict[str, Any]]) -> None:
    """Make the planned cells known to the flows, which receive only their compact views."""
    _PLANNED.update({cell["key"]: cell for cell in cells})


def planned(key: str) -> dict[str, Any]:
    return _PLANNED[key]


def run_cell(cell: Cell, tracking: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) one cell; returns its summary row (from its whole history: time and failures
    survive resumes). Needs a flow run (its tasks and artifacts belong to one)."""
    mlflow_run = MlflowRun(cell, tracking, params or {})
    callbacks: list[CellCallback] = [
        Interrupts(cell.knobs.rounds), MemoryLimit(cell), ProgressBar(cell), mlflow_run,
        CellStory(cell, tracking, mlflow_run),
    ]  # fmt: skip
    state = resume(cell)
    first, rounds = state.round, cell.knobs.rounds
    committer = RoundCommitter(cell, after_commit=mlflow_run.log_round)
    if first >= rounds:
        log.info("cell %s is already finished (%d rounds): skipped", cell.name, first)
    elif state.history:
        log.info(
            "resuming cell %s after round %d of %d (%.1f s after start)",
            cell.name,
            first,
            rounds,
            since_start(),
        )
    for callback in callbacks:
        callback.on_start(state)
    stopped: CellStopped | None = None
    try:
        try:
            for rnd in range(first + 1, rounds + 1):
                parallel = execution.parallel_clients(cell.config)
                for callback in callbacks:
                    parallel = callback.before_round(rnd, parallel)
                state = play_round(cell, state, rnd, parallel, committer)
                for callback in callbacks:
                    callback.after_round(state)
        except CellStopped as stop:  # not a crash: everything up to the last round is committed
            stopped = stop
        committer.finish()  # the last round on disk before the cell ends
    except BaseException:
        _end(callbacks, state, "FAILED", None)
        raise
    if stopped is not None:
        wrapping_up()
        _end(callbacks, state, "STOPPED", None)  # the progress bar ends its line first
        log.log(stopped.level, "%s: %s", cell.name, stopped)
        row = summary.cell_row(
            cell.name, "STOPPED", state.history, rounds_run=state.round - first, message=str(stopped)
        )
        return row
    sha, weights = final_model(cell, state)
    _end(callbacks, state, "FINISHED", (sha, weights))
    return summary.cell_row(
        cell.name, "FINISHED", state.history, rounds_run=state.round - first, final_weights_sha256=sha
    )


def _end(
    callbacks: list[CellCallback], state: CellState, status: str, final: tuple[str, bytes] | None
) -> None:
    for callback in callbacks:
        callback.on_end(state, status, final)


def mlflow_params(cell: dict[str, Any]) -> dict[str, Any]:
    """The params of a cell's MLflow run: its config, less `rounds` where they are where the cell
    stops (a run's params cannot change, and the run grows when the cell is extended: the metric
    `rounds` says how many it has)."""
    return {k: v for k, v in cell["params"].items() if k != "rounds" or cell.get("rounds_in_key", True)}


def since_start() -> float:
    """Seconds since this process started (restart latency, for the log and the benchmark)."""
    return time.time() - psutil.Process().create_time()


@flow(name="cell", log_prints=False, persist_result=False)
def cell_flow(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any] | State:
    """One cell; `cell` is its compact view, the registered cell of its key is run."""
    plan = _PLANNED[cell["key"]]
    name = plan["name"]
    try:
        # The cell's tasks carry no tags (the flow runs do): Prefect asks its server for a tag's
        # concurrency slots at the start of every tagged task run, a round trip to a server that
        # runs at a lower priority than training, which stalled rounds by ~2 s every few rounds.
        with TagsContext(current_tags=set()):
            row = run_cell(open_cell(plan["dir"]), tracking, mlflow_params(plan))
        return stopped(row["message"], row) if row["status"] == "STOPPED" else row
    except execution.EngineLost as err:
        print(f"cell {name} stopped: {err}", flush=True)
        return {"cell": name, "status": "LOST", "message": str(err)}
    except KNOWN_FAILURES as err:
        return Failed(message=f"{type(err).__name__}: {' '.join(str(err).split())}")
    except Exception as err:
        log.exception("cell %s: unexpected error", name)
        return Failed(message=f"{type(err).__name__}: {err}")


def run_one(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """One planned cell's subflow, tagged with its options; its summary row (FAILED with the reason
    printed when it fails)."""
    parallel = cell["config"]["runner"]["max_parallel_clients"] or execution.engine_of(cell["config"]).width()
    run = cell_flow.with_options(
        flow_run_name=cell["name"], task_runner=ThreadPoolTaskRunner(max_workers=parallel)
    )
    with tags(*view.cell_tags(cell)):
        state = run(view.compact_cell(cell), tracking, return_state=True)
    if state.is_completed() or state.is_cancelled():  # LOST and STOPPED are clean, resumable ends
        return rows_of(state)
    print(f"cell {cell['name']} failed: {state.message}", flush=True)
    return {"cell": cell["name"], "status": "FAILED"}


def stopped(message: str, rows: Any) -> State:
    """The end of a flow run stopped cleanly: Cancelled, with the reason, carrying its rows."""
    return Cancelled(message=f"{message}; committed rounds are kept and re-running resumes", data=rows)


def rows_of(state: State) -> Any:
    """What a cell's or the sweep's flow run returned: a Cancelled one (a clean stop) carries it too."""
    return state.result(raise_on_failure=not state.is_cancelled())
