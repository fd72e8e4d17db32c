"""One cell: the FL round loop, as a Prefect flow.

Each round is plan (a probe task first, if the selector asks for one) -> one task per client per
local epoch (flows/training.py, until the round's deadline if there is one) -> aggregate ->
evaluate -> commit (in the background) -> track. The loop passes references between tasks and
decides nothing a library function can (fedsweep/rounds.py decides; fedsweep/steps.py works; the
execution seam runs the work); it never holds model tensors. Client-epoch, aggregation and
evaluation results are persisted under content keys, so a re-run finds what a killed run finished.
"""

import logging
import time
from typing import Any

import psutil
import yaml
from prefect import flow
from tqdm import tqdm

from fedsweep import deadline as deadlines
from fedsweep import rounds, summary
from fedsweep.cell import CellEnv, cell_env
from fedsweep.checkpoint.cellstate import CellState, final_model, resume
from fedsweep.execution import parallel_clients, round_measures
from fedsweep.interrupt import StopRequested, stop_requested, wrapping_up
from fedsweep.memory.guard import guard_from_config
from fedsweep.memory.rss import rss_mb
from flows.artifacts import CellStory
from flows.commit import RoundCommitter
from flows.training import train_clients
from tasks import track
from tasks.aggregate import aggregate_round
from tasks.evaluate import evaluate_round
from tasks.probe import probe_losses

log = logging.getLogger("fedsweep")


class MemoryLimitReached(RuntimeError):
    """The memory guard's stop level: the last round is committed, the sweep stops cleanly."""


def aggregate(
    cell_dir: str, plan: rounds.RoundPlan, start: dict, results: list[dict], failures: list[dict], keep: bool
) -> dict:
    """The aggregation task, recomputed if its persisted result points to a blob that is gone."""
    args = (cell_dir, plan.round, start, results, failures, list(plan.selected), keep, plan.weights)
    state = aggregate_round(*args, return_state=True)
    refs = state.result()
    if state.name == "Cached" and not all(cell_env(cell_dir).blobs.holds(r) for r in refs.values()):
        refs = aggregate_round.with_options(refresh_cache=True)(*args)
    return refs


def play_round(
    cell_dir: str, cell: CellState, rnd: int, parallel: int, committer: RoundCommitter
) -> CellState:
    """Round `rnd`: plan, train, aggregate under the policy, evaluate; returns the next state. The
    previous round's commit is waited for before the selector observes the round, so `observe` may
    update the selector's state in place (fedsweep/selection/base.py) while nothing writes it."""
    tick = time.perf_counter()
    env = cell_env(cell_dir)
    rt = env.runtime
    plan = rounds.plan_round(
        env, cell, rnd, probe=lambda asked: probe(cell_dir, rnd, cell.start["global"], asked)
    )
    trained = time.perf_counter()
    planned = trained - tick  # availability, probe and selection, first participants' state
    deadline = deadlines.start(env, rnd)
    results, failures, reused, cut = train_clients(cell_dir, plan, cell.start["global"], parallel, deadline)
    trained = time.perf_counter() - trained
    if deadline is not None and cut:
        _cut_off(env, deadline, cut)
        failures = [*failures, *deadline.failures(cut)]
    valid, rejected = rounds.split_invalid(results)
    failures = [*failures, *plan.failures, *rejected]
    ok = len(plan.selected) - len(failures)
    decision = rt.policy.decide(ok, len(plan.selected))
    if decision == "fail":
        raise rt.policy.failure(round=rnd, ok=ok, selected=len(plan.selected))
    start = aggregate(
        cell_dir,
        plan,
        cell.start,
        valid,
        sorted(failures, key=lambda f: f["client"]),
        keep=decision == "skip",
    )
    evaluated = time.perf_counter()
    evaluation = evaluate_round(cell_dir, rnd, start["global"])
    row = rounds.round_row(
        plan,
        results,
        failures,
        num_clients=rt.num_clients,
        kept=decision == "skip",
        evaluation=evaluation,
        tasks_reused=reused,
        parallel_clients=parallel,
        round_seconds=time.perf_counter() - tick,
        plan_seconds=planned,
        train_seconds=trained,
        eval_seconds=time.perf_counter() - evaluated,
        **round_measures(cell_dir),
    )
    row["checkpoint_wait_seconds"] = committer.drain()
    return rounds.after_round(
        env,
        cell,
        plan,
        start,
        valid,
        failures,
        kept=decision == "skip",
        row=row,
        committing=committer.writing(),
    )


def probe(cell_dir: str, rnd: int, global_ref: dict, asked: Any) -> dict[int, float]:
    """The probe task's losses (candidate -> loss) for what a selector's `Probe` asked (`clients`,
    `samples`), with the client tasks' retries; says so when an earlier run's losses are reused."""
    runner = cell_env(cell_dir).runtime.settings.runner
    task = probe_losses.with_options(retries=runner.retries, retry_delay_seconds=runner.retry_delay_s)
    state = task(cell_dir, rnd, global_ref, list(asked.clients), asked.samples, return_state=True)
    losses = state.result()
    if state.name == "Cached":
        log.info(
            "round %d: the losses of %d probed client(s) were reused from an earlier run", rnd, len(losses)
        )
    return {int(client): loss for client, loss in losses.items()}


def _cut_off(env: CellEnv, deadline: deadlines.Deadline, cut: set[int]) -> None:
    """Record the clients a deadline cut (before aggregating: a replay must cut the same) and say so."""
    if deadline.earlier:
        log.info(
            "round %d: client(s) %s were cut off by the round deadline in an earlier run; not trained again",
            deadline.round,
            ", ".join(map(str, sorted(deadline.earlier))),
        )
    if cut - deadline.earlier:
        deadlines.record(env, deadline, cut)
        log.warning(
            "round %d: the round deadline (%g s) cut off client(s) %s",
            deadline.round,
            deadline.seconds,
            ", ".join(map(str, sorted(cut - deadline.earlier))),
        )


@flow(name="cell", log_prints=False)
def run_cell(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) one cell; returns its summary row (from its whole history: time and failures
    survive resumes), or says it is already finished and skips it."""
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
    first = state.round
    story = CellStory(sweep=cfg["sweep_name"], name=name, rounds=rounds_total, history=state.history)
    committer = RoundCommitter(
        cell_dir=cell_dir, uri=uri, run_id=run_id, logged=logged, settings=settings.checkpoint
    )
    guard = guard_from_config(settings.runner.memory.model_dump())
    committer.log_missing(state.history)
    if first >= rounds_total:
        log.info("cell %s is already finished (%d rounds): skipped", name, first)
    elif state.history:
        log.info(
            "resuming cell %s after round %d of %d (%.1f s after start)",
            name,
            state.round,
            rounds_total,
            since_start(),
        )
    bar = tqdm(
        total=rounds_total,
        initial=state.round,
        desc=name,
        unit="round",
        disable=not settings.runner.progress or first >= rounds_total,
    )
    try:
        for rnd in range(state.round + 1, rounds_total + 1):
            if stop_requested():  # Ctrl-C or SIGTERM (fedsweep/interrupt.py): commit, then stop
                committer.finish()
                raise StopRequested(f"stopped after round {state.round} of {rounds_total}")
            memory = guard.check()
            if memory.level == "stop":
                committer.finish()  # everything up to the previous round is on disk
                raise MemoryLimitReached(memory.message)
            if memory.level != "ok":
                log.warning("%s round %d: %s", name, rnd, memory.message)
            parallel = guard.allowed_parallel(parallel_clients(settings.runner.max_parallel_clients), memory)
            state = play_round(cell_dir, state, rnd, parallel, committer)
            state.history[-1].update(rss_mb=rss_mb())
            committer.submit(state)
            bar.set_postfix(summary.postfix(state.history))
            bar.update(1)
            story.round_done(state.history)
        committer.finish()
    except (MemoryLimitReached, StopRequested) as stop:
        # Not a crash: everything up to the last round is committed and re-running resumes.
        wrapping_up()
        log.log(
            logging.WARNING if isinstance(stop, MemoryLimitReached) else logging.INFO, "%s: %s", name, stop
        )
        if run_id:
            track.finish_run(uri, run_id, "KILLED", {}, {})
        return summary.cell_row(
            name, "STOPPED", state.history, rounds_run=state.round - first, message=str(stop)
        )
    except BaseException:
        if run_id:
            track.finish_run(uri, run_id, "FAILED", {}, {})
        raise
    finally:
        bar.close()
        story.close()
    sha, weights = final_model(env, state)
    if run_id and run_status != "FINISHED":
        files = {
            "config.yaml": yaml.safe_dump(cfg, sort_keys=False).encode(),
            "model/final.safetensors": weights,
        }
        track.finish_run(uri, run_id, "FINISHED", {"final_weights_sha256": sha}, files)
    story.finish(state.history, tracking, run_id)
    return summary.cell_row(
        name, "FINISHED", state.history, rounds_run=state.round - first, final_weights_sha256=sha
    )


def since_start() -> float:
    """Seconds since this process started (restart latency, for the log and the benchmark)."""
    return time.time() - psutil.Process().create_time()
