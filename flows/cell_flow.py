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

A cell's flow run starts ahead of its turn (flows/turns.py): Prefect's calls that create it and end
it (a few round trips each, seconds when the server is busy) overlap the training of the cell before,
and its round loop waits for its turn inside the flow run. Whatever Prefect's API does, a cell is never
failed by it: a cell whose flow run is late (`take_over`) or cannot be started at all trains under
the sweep's flow run (its tasks and lines are recorded there), one whose flow run cannot be ended
keeps its row; each is one line in the terminal (server/records.py says when records are late).
"""

import contextvars
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
from flows.turns import CellStart, Turns
from server.records import records

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


_START: contextvars.ContextVar[CellStart] = contextvars.ContextVar("fedsweep_cell_start")


@flow(name="cell", log_prints=False, persist_result=False)
def cell_flow(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any] | State:
    """One cell; `cell` is its compact view, the registered cell of its key is run in its turn."""
    start = _START.get(None) or _alone(cell["key"])
    records().done(start.waiting)
    if start.begin():
        train(start, tracking)
    outcome = start.outcome()  # a cell taken over while this flow run started: what it ended with
    start.ending = records().wait(f"cell {_PLANNED[cell['key']]['name']}'s flow run to end", lambda: False)
    return outcome


def take_over(start: CellStart, tracking: dict[str, Any]) -> None:
    """Train a cell whose flow run is late to start now, under the sweep's flow run (its tasks and
    lines are recorded there); its own flow run, once started, ends with the cell's outcome."""
    start.taken_over = True
    records().announce(
        f"records delayed: cell {_PLANNED[start.key]['name']}'s flow run has not started; the cell "
        "trains now, its tasks recorded under the sweep's flow run"
    )
    records().done(start.waiting)
    train(start, tracking)


def _alone(key: str) -> CellStart:
    """The start of a cell run on its own (no sweep's turns)."""
    turns = Turns(1)
    turns.admit(0)
    return CellStart(turns, 0, records().wait("a cell's flow run to start"), key=key)


def train(start: CellStart, tracking: dict[str, Any]) -> None:
    """Play the cell of `start` (its caller began it) and record how it ended."""
    outcome: Any = Failed(message="the cell's training ended abruptly")
    try:
        outcome = play(start.key, tracking, start)
    finally:
        start.finish(outcome)


def play(key: str, tracking: dict[str, Any], start: CellStart) -> dict[str, Any] | State:
    """The cell of `key`, in its turn: its row, or the end state of its flow run."""
    try:
        return _play(_PLANNED[key], tracking, start)
    finally:
        start.done_training()


def _play(plan: dict[str, Any], tracking: dict[str, Any], start: CellStart) -> dict[str, Any] | State:
    name = plan["name"]
    with start.turns.turn(start.index) as granted:
        if not granted:
            row = {"cell": name, "status": "NOT RUN"}
            return Cancelled(
                message="the sweep stopped before this cell's turn; re-running runs it", data=row
            )
        try:
            # The cell's tasks carry no tags (the flow runs do): Prefect asks its server for a tag's
            # concurrency slots at the start of every tagged task run, a round trip to a server that
            # runs at a lower priority than training, which stalled rounds by ~2 s every few rounds.
            with TagsContext(current_tags=set()):
                row = run_cell(open_cell(plan["dir"]), tracking, mlflow_params(plan))
            if row["status"] != "STOPPED":
                return row
            start.turns.halt()  # before this turn is free: the cell started ahead must not train
            return stopped(row["message"], row)
        except execution.EngineLost as err:
            start.turns.halt()
            print(f"cell {name} stopped: {err}", flush=True)
            return {"cell": name, "status": "LOST", "message": str(err)}
        except KNOWN_FAILURES as err:
            return Failed(message=f"{type(err).__name__}: {' '.join(str(err).split())}")
        except Exception as err:
            log.exception("cell %s: unexpected error", name)
            return Failed(message=f"{type(err).__name__}: {err}")


def run_one(
    cell: dict[str, Any], tracking: dict[str, Any], turns: Turns | None = None, index: int = 0
) -> dict[str, Any]:
    """One planned cell's subflow, tagged with its options, trained in its turn (`turns`, its place
    `index` in the grid); its summary row (FAILED with the reason printed when it fails)."""
    parallel = cell["config"]["runner"]["max_parallel_clients"] or execution.engine_of(cell["config"]).width()
    run = cell_flow.with_options(
        flow_run_name=cell["name"], task_runner=ThreadPoolTaskRunner(max_workers=parallel)
    )
    if turns is None:  # a cell on its own
        start = _alone(cell["key"])
    else:
        waiting = records().wait(f"cell {cell['name']}'s flow run to start", turns.starved)
        start = CellStart(turns, index, waiting, key=cell["key"])
        turns.starting(start)
    token = _START.set(start)
    try:
        with tags(*view.cell_tags(cell)):
            state = run(view.compact_cell(cell), tracking, return_state=True)
    except Exception as err:  # noqa: BLE001 - Prefect's API, not the cell: the cell's row stands
        return _without_flow_run(cell, tracking, start, err)
    finally:
        _START.reset(token)
        start.done_training()  # if its flow run ended before it trained (an error of Prefect's)
        records().done(start.waiting)
        if start.ending is not None:
            records().done(start.ending)
    if state.is_completed() or state.is_cancelled():  # LOST, STOPPED and NOT RUN are clean ends
        return rows_of(state)
    print(f"cell {cell['name']} failed: {state.message}", flush=True)
    return {"cell": cell["name"], "status": "FAILED"}


def _without_flow_run(
    cell: dict[str, Any], tracking: dict[str, Any], start: CellStart, err: Exception
) -> dict[str, Any]:
    """The cell's row when Prefect failed to start or to end its flow run (retries spent)."""
    name, why = cell["name"], " ".join(f"{type(err).__name__}: {err}".split())[:200]
    if start.begin():  # it never started: it trains now, under the sweep's flow run
        records().announce(
            f"records: cell {name}'s flow run could not be started in Prefect ({why}); "
            "it trains under the sweep's flow run"
        )
        records().done(start.waiting)
        train(start, tracking)
    elif start.taken_over:
        records().announce(f"records: cell {name}'s flow run could not be started in Prefect ({why})")
    else:
        records().announce(f"records: cell {name}'s end was not recorded in Prefect ({why})")
    outcome = start.outcome()
    if isinstance(outcome, State) and outcome.is_failed():
        print(f"cell {name} failed: {outcome.message}", flush=True)
        return {"cell": name, "status": "FAILED"}
    return rows_of(outcome) if isinstance(outcome, State) else outcome


def stopped(message: str, rows: Any) -> State:
    """The end of a flow run stopped cleanly: Cancelled, with the reason, carrying its rows."""
    return Cancelled(message=f"{message}; committed rounds are kept and re-running resumes", data=rows)


def rows_of(state: State) -> Any:
    """What a cell's or the sweep's flow run returned: a Cancelled one (a clean stop) carries it too."""
    return state.result(raise_on_failure=not state.is_cancelled())
