"""One cell: the FL round loop, as a Prefect flow.

Each round is plan -> one task per client per local epoch -> aggregate -> evaluate -> commit (in the
background) -> track. The loop passes references between tasks and decides nothing a library
function can (fedsweep/rounds.py decides; fedsweep/steps.py works; the execution seam runs the
work); it never holds model tensors. Client-epoch, aggregation and evaluation results are persisted
under content keys, so a re-run finds what a killed run finished.
"""

import logging
import time
from typing import Any

import psutil
import yaml
from prefect import flow
from prefect.futures import PrefectFuture, as_completed
from tqdm import tqdm

from fedsweep import rounds
from fedsweep.cell import cell_env
from fedsweep.checkpoint.cellstate import CellState, final_model, resume
from fedsweep.execution import parallel_clients, round_measures
from fedsweep.memory.guard import guard_from_config
from fedsweep.memory.rss import rss_mb
from flows.artifacts import CellStory
from flows.commit import RoundCommitter
from flows.interrupt import StopRequested, stop_requested
from tasks import track
from tasks.aggregate import aggregate_round
from tasks.evaluate import evaluate_round
from tasks.train import train_client_epoch

log = logging.getLogger("fedsweep")


class _Ran:
    """A task run that already finished in this thread, read like a finished PrefectFuture."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def result(self, raise_on_failure: bool = False) -> Any:
        return self.state.result(raise_on_failure=raise_on_failure)


def _next_done(pending: dict) -> Any:
    ran = next((f for f in pending if isinstance(f, _Ran)), None)
    return ran if ran is not None else next(iter(as_completed(list(pending))))


class MemoryLimitReached(RuntimeError):
    """The memory guard's stop level: the last round is committed, the sweep stops cleanly."""


def train_clients(
    cell_dir: str, plan: rounds.RoundPlan, global_ref: dict, parallel: int
) -> tuple[list[dict], list[dict], int]:
    """Run each client's chain of epoch tasks, at most `parallel` chains at once.

    Returns (final references, failures, tasks reused from an earlier run's persisted results).
    """
    env = cell_env(cell_dir)
    runner, blobs = env.runtime.settings.runner, env.blobs
    task = train_client_epoch.with_options(
        retries=runner.retries, retry_delay_seconds=runner.retry_delay_s, timeout_seconds=runner.task_timeout_s or None,
    )
    per_client = runner.granularity == "client"
    # One client at a time: run its tasks in this (the flow's) thread rather than hop through the task
    # runner's thread for nothing (the work itself goes where the cell's executor puts it).
    inline = parallel == 1
    pending: dict[PrefectFuture | _Ran, tuple[int, int, dict | None]] = {}

    def submit(client: int, epoch: int, input_ref: dict | None, refresh: bool = False) -> None:
        epochs = plan.epochs[client]
        chosen = task.with_options(refresh_cache=True) if refresh else task
        args = (cell_dir, plan.round, client, epoch, epochs - epoch if per_client else 1, epochs, global_ref,
                input_ref, plan.states[client])
        future = _Ran(chosen(*args, return_state=True)) if inline else chosen.submit(*args)
        pending[future] = (client, epoch, input_ref)

    waiting = sorted(plan.epochs)
    for client in waiting[:parallel]:
        submit(client, 0, None)
    waiting = waiting[parallel:]
    results, failures, reused = [], [], 0
    while pending:
        future = _next_done(pending)
        client, epoch, input_ref = pending.pop(future)
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failures.append(rounds.failure_record(client, outcome, retries=runner.retries))
            log.warning("round %d: client %d failed at epoch %d: %s", plan.round, client, epoch,
                        failures[-1]["message"])
        elif future.state.name == "Cached" and not blobs.holds(outcome):
            # A persisted result whose blob is gone or changed (moved, pruned, damaged): recompute.
            log.warning("round %d: cached result of client %d epoch %d is stale; recomputing", plan.round, client, epoch)
            submit(client, epoch, input_ref, refresh=True)
            continue
        else:
            reused += future.state.name == "Cached"
            if outcome["epochs_done"] < plan.epochs[client]:
                submit(client, outcome["epochs_done"], outcome)
                continue
            results.append(outcome)
        if waiting:  # a chain ended: start the next client's
            submit(waiting.pop(0), 0, None)
    return sorted(results, key=lambda r: r["client"]), sorted(failures, key=lambda f: f["client"]), reused


def aggregate(cell_dir: str, plan: rounds.RoundPlan, start: dict, results: list[dict], failures: list[dict],
              keep: bool) -> dict:
    """The aggregation task, recomputed if its persisted result points to a blob that is gone."""
    args = (cell_dir, plan.round, start, results, failures, list(plan.selected), keep)
    state = aggregate_round(*args, return_state=True)
    refs = state.result()
    if state.name == "Cached" and not all(cell_env(cell_dir).blobs.holds(r) for r in refs.values()):
        refs = aggregate_round.with_options(refresh_cache=True)(*args)
    return refs


def play_round(cell_dir: str, cell: CellState, rnd: int, parallel: int) -> CellState:
    """Round `rnd`: plan, train, aggregate under the policy, evaluate; returns the next state."""
    tick = time.perf_counter()
    env = cell_env(cell_dir)
    rt = env.runtime
    plan = rounds.plan_round(env, cell, rnd)
    trained = time.perf_counter()
    results, failures, reused = train_clients(cell_dir, plan, cell.start["global"], parallel)
    trained = time.perf_counter() - trained
    valid, rejected = rounds.split_invalid(results)
    failures = [*failures, *plan.failures, *rejected]
    ok = len(plan.selected) - len(failures)
    decision = rt.policy.decide(ok, len(plan.selected))
    if decision == "fail":
        raise rt.policy.failure(round=rnd, ok=ok, selected=len(plan.selected))
    start = aggregate(cell_dir, plan, cell.start, valid, sorted(failures, key=lambda f: f["client"]),
                      keep=decision == "skip")
    evaluated = time.perf_counter()
    evaluation = evaluate_round(cell_dir, rnd, start["global"])
    row = rounds.round_row(
        plan, results, failures, num_clients=rt.num_clients, kept=decision == "skip", evaluation=evaluation,
        tasks_reused=reused, parallel_clients=parallel, round_seconds=time.perf_counter() - tick,
        train_seconds=trained, eval_seconds=time.perf_counter() - evaluated, **round_measures(cell_dir),
    )
    return rounds.after_round(env, cell, plan, start, valid, failures, kept=decision == "skip", row=row)


@flow(name="cell", log_prints=False)
def run_cell(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) one cell; returns its summary row."""
    started = time.perf_counter()
    cfg, cell_dir, name = cell["config"], cell["dir"], cell["name"]
    env = cell_env(cell_dir)
    settings, uri = env.runtime.settings, tracking.get("uri")
    rounds_total = settings.knobs.rounds
    run_id, logged, run_status = (None, 0, None)
    if uri:
        run_id, logged, run_status = track.open_cell_run(
            uri, tracking["experiment_id"], tracking["parent_run_id"], name, cell["key"], cell["params"]
        )
    state = resume(env)
    story = CellStory(sweep=cfg["sweep_name"], name=name, rounds=rounds_total, history=state.history)
    committer = RoundCommitter(cell_dir=cell_dir, uri=uri, run_id=run_id, logged=logged, settings=settings.checkpoint)
    guard = guard_from_config(settings.runner.memory.model_dump())
    committer.log_missing(state.history)
    if state.history and state.round < rounds_total:
        log.info("resuming cell %s after round %d of %d (%.1f s after start)", name, state.round, rounds_total,
                 since_start())
    bar = tqdm(total=rounds_total, initial=state.round, desc=name, unit="round", disable=not settings.runner.progress)
    try:
        for rnd in range(state.round + 1, rounds_total + 1):
            if stop_requested():  # Ctrl-C or SIGTERM (flows/interrupt.py): commit, then stop
                committer.finish()
                raise StopRequested(f"stopped after round {state.round} of {rounds_total}")
            memory = guard.check()
            if memory.level == "stop":
                committer.finish()  # everything up to the previous round is on disk
                raise MemoryLimitReached(memory.message)
            if memory.level != "ok":
                log.warning("%s round %d: %s", name, rnd, memory.message)
            parallel = guard.allowed_parallel(parallel_clients(settings.runner.max_parallel_clients), memory)
            state = play_round(cell_dir, state, rnd, parallel)
            row = state.history[-1]
            row.update(checkpoint_wait_seconds=committer.drain(), rss_mb=rss_mb())
            committer.submit(state)
            bar.set_postfix(acc=f"{row['accuracy']:.3f}", failed=int(row["clients_failed"]))
            bar.update(1)
            story.round_done(state.history)
        committer.finish()
    except (MemoryLimitReached, StopRequested) as stop:
        # Not a crash: everything up to the last round is committed and re-running resumes.
        log.log(logging.WARNING if isinstance(stop, MemoryLimitReached) else logging.INFO, "%s: %s", name, stop)
        if run_id:
            track.finish_run(uri, run_id, "KILLED", {}, {})
        return {"cell": name, "status": "STOPPED", "rounds": state.round, "message": str(stop)}
    except BaseException:
        if run_id:
            track.finish_run(uri, run_id, "FAILED", {}, {})
        raise
    finally:
        bar.close()
        story.close()
    sha, weights = final_model(env, state)
    if run_id and run_status != "FINISHED":
        files = {"config.yaml": yaml.safe_dump(cfg, sort_keys=False).encode(), "model/final.safetensors": weights}
        track.finish_run(uri, run_id, "FINISHED", {"final_weights_sha256": sha}, files)
    story.finish(state.history, tracking, run_id)
    accuracies = [h["accuracy"] for h in state.history]
    return {
        "cell": name, "status": "FINISHED", "final_accuracy": accuracies[-1] if accuracies else float("nan"),
        "best_accuracy": max(accuracies, default=float("nan")), "rounds": state.round,
        "wall_s": time.perf_counter() - started,
        "clients_failed": int(sum(h["clients_failed"] for h in state.history)), "final_weights_sha256": sha,
    }


def since_start() -> float:
    """Seconds since this process started (restart latency, for the log and the benchmark)."""
    return time.time() - psutil.Process().create_time()
