"""One round of a cell, top to bottom: plan -> train -> aggregate -> evaluate -> commit.

The round calls tasks (tasks/) for the work and the round's library (fedsweep/rounds/) for every
decision, and holds only small references, never model tensors:

1. **plan**: availability, a selector's probe task if it asks for one, selection, first participants'
   state, stragglers under the aggregation policy, the simulated clock (`plan_round`);
2. **train**: each selected client's chain of client-epoch tasks (one per local epoch, or one per
   client with `runner.granularity=client`), or with `runner.batch_clients` groups of clients as
   chains of batch tasks (flows/batches.py), at most `parallel` chains at once, until the round's
   deadline if there is one (`aggregation.round_timeout_s`: the loop waits no longer than the deadline
   plus a grace period, starts nothing once it has passed, and records whom it cut);
3. **aggregate**: the aggregation policy decides (aggregate, keep the global model, or fail the
   cell), then the aggregation task;
4. **evaluate**: the evaluation task on the new global model, every `evaluate_every` rounds and in the
   last one (the others' rows have no `accuracy` or `loss`);
5. **commit**: the round's row of metrics and the cell's next state; the committer waits (bounded)
   for the previous round's checkpoint, then writes this one in the background (flows/commit.py).

Client-epoch, probe, aggregation and evaluation results are persisted under content keys, so a re-run
finds what a killed run finished.
"""

import logging
import time
from typing import Any

from prefect.futures import PrefectFuture

from fedsweep import execution
from fedsweep.batched.memory import peak_mb, reset_peak
from fedsweep.cell.cell import Cell
from fedsweep.failures import DeadlinePassed, Failure, failure_record
from fedsweep.memory.rss import rss_mb
from fedsweep.rounds import deadline as deadlines
from fedsweep.rounds.batch import batching
from fedsweep.rounds.plan import RoundPlan, plan_round
from fedsweep.rounds.refs import ClientRef, RoundStart
from fedsweep.rounds.report import after_round, round_row, split_invalid
from fedsweep.rounds.state import CellState
from fedsweep.schedule import evaluates
from flows.batches import Trained, train_batches
from flows.commit import RoundCommitter
from flows.pending import Ran, next_done
from tasks.aggregate import aggregate_round
from tasks.evaluate import evaluate_round
from tasks.probe import probe_losses
from tasks.train import train_client_epoch

log = logging.getLogger("fedsweep")


def play_round(cell: Cell, state: CellState, rnd: int, parallel: int, committer: RoundCommitter) -> CellState:
    """Round `rnd` from `state`; returns the cell's next state, handed to `committer`."""
    tick = time.perf_counter()
    plan = plan_round(cell, state, rnd, probe=lambda asked: probe(cell, rnd, state.start, asked))
    planned = time.perf_counter() - tick  # availability, probe and selection, first participants' state

    trained = time.perf_counter()
    reset_peak(cell.methods.device)  # gpu_mem_mb: the round's peak, on CUDA
    deadline = deadlines.start(cell, rnd)
    limit, batched = batching(cell), Trained()
    if limit is None:
        results, failures, reused, cut = train_clients(cell, plan, state.start, parallel, deadline)
    else:  # runner.batch_clients: groups of clients train together (flows/batches.py)
        results, failures, batched, cut = train_batches(cell, plan, state.start, parallel, deadline, limit)
        reused = batched.reused
    trained = time.perf_counter() - trained
    if deadline is not None and cut:
        _cut_off(cell, deadline, cut)
        failures = [*failures, *deadline.failures(cut)]

    valid, rejected = split_invalid(results)
    failures = sorted([*failures, *plan.failures, *rejected], key=lambda f: f["client"])
    ok = len(plan.selected) - len(failures)
    decision = cell.methods.policy.decide(ok, len(plan.selected))
    if decision == "fail":
        raise cell.methods.policy.failure(round=rnd, ok=ok, selected=len(plan.selected))
    start = aggregate(cell, plan, state.start, valid, failures, keep=decision == "skip")

    evaluated = time.perf_counter()
    knobs = cell.knobs
    evaluation = (
        evaluate_round(cell, rnd, start["global"])
        if evaluates(rnd, every=knobs.evaluate_every, rounds=knobs.rounds)
        else {}  # a round without evaluation has no accuracy or loss in its row
    )
    row = round_row(
        plan, results, failures, num_clients=cell.num_clients, kept=decision == "skip", evaluation=evaluation,
        tasks_reused=reused, parallel_clients=parallel, round_seconds=time.perf_counter() - tick,
        plan_seconds=planned, train_seconds=trained, eval_seconds=time.perf_counter() - evaluated,
        **execution.round_measures(cell), **gpu_memory(cell, batched),
    )  # fmt: skip

    row["checkpoint_wait_seconds"] = committer.drain()  # the selector may now update its state in place
    after = after_round(
        cell,
        state,
        plan,
        start,
        valid,
        failures,
        kept=decision == "skip",
        row=row,
        committing=committer.writing(),
    )
    after.history[-1]["rss_mb"] = rss_mb()
    committer.submit(after)
    return after


def gpu_memory(cell: Cell, batched: Trained) -> dict[str, float]:
    """`gpu_mem_mb`, on CUDA only: the round's peak GPU memory, here and in its batch jobs elsewhere."""
    peaks = [p for p in (peak_mb(cell.methods.device), batched.gpu_mem_mb) if p is not None]
    return {"gpu_mem_mb": max(peaks)} if peaks else {}


def probe(cell: Cell, rnd: int, start: RoundStart, asked: Any) -> dict[int, float]:
    """The probe task's losses (candidate -> loss) for what a selector's `Probe` asked (`clients`,
    `samples`), with the client tasks' retries; says so when an earlier run's losses are reused."""
    runner = cell.runner
    task = probe_losses.with_options(retries=runner.retries, retry_delay_seconds=runner.retry_delay_s)
    state = task(cell, rnd, start["global"], list(asked.clients), asked.samples, return_state=True)
    losses = state.result()
    if state.name == "Cached":
        log.info(
            "round %d: the losses of %d probed client(s) were reused from an earlier run", rnd, len(losses)
        )
    return {int(client): loss for client, loss in losses.items()}


def aggregate(
    cell: Cell,
    plan: RoundPlan,
    start: RoundStart,
    results: list[ClientRef],
    failures: list[Failure],
    keep: bool,
) -> RoundStart:
    """The aggregation task, recomputed if its persisted result points to a blob that is gone."""
    args = (cell, plan.round, start, results, failures, list(plan.selected), keep, plan.weights)
    state = aggregate_round(*args, return_state=True)
    refs: RoundStart = state.result()
    if state.name == "Cached" and not all(cell.stores.blobs.holds(r) for r in refs.values()):
        refs = aggregate_round.with_options(refresh_cache=True)(*args)
    return refs


def _cut_off(cell: Cell, deadline: deadlines.Deadline, cut: set[int]) -> None:
    """Record the clients a deadline cut (before aggregating: a replay must cut the same) and say so."""
    if deadline.earlier:
        log.info(
            "round %d: client(s) %s were cut off by the round deadline in an earlier run; not trained again",
            deadline.round, ", ".join(map(str, sorted(deadline.earlier))),
        )  # fmt: skip
    if cut - deadline.earlier:
        deadlines.record(cell, deadline, cut)
        log.warning(
            "round %d: the round deadline (%g s) cut off client(s) %s",
            deadline.round, deadline.seconds, ", ".join(map(str, sorted(cut - deadline.earlier))),
        )  # fmt: skip


def train_clients(
    cell: Cell, plan: RoundPlan, start: RoundStart, parallel: int, deadline: deadlines.Deadline | None = None
) -> tuple[list[ClientRef], list[Failure], int, set[int]]:
    """Run each client's chain of epoch tasks, at most `parallel` chains at once, until `deadline`.

    Returns (final references, failures, tasks reused from an earlier run's persisted results,
    clients the deadline cut off: those an earlier run cut, and those whose chain did not complete).
    """
    runner, blobs, global_ref = cell.runner, cell.stores.blobs, start["global"]
    task = train_client_epoch.with_options(  # under a deadline the task bounds its attempts (tasks/train.py)
        retries=runner.retries,
        retry_delay_seconds=runner.retry_delay_s,
        timeout_seconds=None if deadline else runner.task_timeout_s or None,
    )
    cut = set(deadline.earlier) if deadline else set()
    late = (lambda: False) if deadline is None else deadline.passed
    per_client = runner.granularity == "client"
    # One client at a time: run its tasks in this (the flow's) thread rather than hop through the task
    # runner's thread for nothing (the work itself goes where the cell's engine puts it).
    inline = parallel == 1
    pending: dict[PrefectFuture | Ran, tuple[int, int, ClientRef | None]] = {}

    def submit(client: int, epoch: int, input_ref: ClientRef | None, refresh: bool = False) -> None:
        epochs = plan.epochs[client]
        chosen = task.with_options(refresh_cache=True) if refresh else task
        span = epochs - epoch if per_client else 1
        args = (cell, plan.round, client, epoch, span, epochs, global_ref, input_ref, plan.states[client],
                deadline.at if deadline else None)  # fmt: skip
        future = Ran(chosen(*args, return_state=True)) if inline else chosen.submit(*args)
        pending[future] = (client, epoch, input_ref)

    waiting = sorted(set(plan.epochs) - cut)
    for client in waiting[:parallel]:
        submit(client, 0, None)
    waiting = waiting[parallel:]
    results: list[ClientRef] = []
    failures: list[Failure] = []
    reused = 0
    while pending:
        future = next_done(pending, deadline)
        if future is None:  # chains still running a grace period past the deadline: left behind
            break
        client, epoch, input_ref = pending.pop(future)
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, DeadlinePassed):
            cut.add(client)
        elif isinstance(outcome, BaseException):
            failures.append(failure_record(client, outcome, retries=runner.retries))
            log.warning(
                "round %d: client %d failed at epoch %d: %s",
                plan.round,
                client,
                epoch,
                failures[-1]["message"],
            )
        elif future.state.name == "Cached" and not blobs.holds(outcome):
            # A persisted result whose blob is gone or changed (moved, pruned, damaged): recompute.
            log.warning(
                "round %d: cached result of client %d epoch %d is stale; recomputing",
                plan.round,
                client,
                epoch,
            )
            submit(client, epoch, input_ref, refresh=True)
            continue
        else:
            reused += future.state.name == "Cached"
            if outcome["epochs_done"] < plan.epochs[client] and not late():
                submit(client, outcome["epochs_done"], outcome)
                continue
            if outcome["epochs_done"] < plan.epochs[client]:
                cut.add(client)
            else:
                results.append(outcome)
        if waiting and not late():  # a chain ended: start the next client's
            submit(waiting.pop(0), 0, None)
    cut.update(waiting, (client for client, _, _ in pending.values()))
    results.sort(key=lambda r: r["client"])
    return results, sorted(failures, key=lambda f: f["client"]), reused, cut
