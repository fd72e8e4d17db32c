"""The train step of a round whose clients train batched (`runner.batch_clients`, fedsweep/rounds/batch.py).

The round's training clients form groups (`groups`); each group is a chain of `client-batch` tasks
(tasks/train.py), as each client is a chain of client-epoch tasks one by one, and as many chains run
at once as the cell's engine runs jobs side by side (one GPU in this process: one; a Dask cluster:
one per worker), bounded by the round's `parallel`. After each task of a chain:

- a member that finished its round's work is a result; one with work left joins the chain's next
  task (its next epoch, or chunk of `local_steps`; all of them at once with `runner.granularity=client`);
- a member whose attempt failed joins the next task with its next attempt while the retry policy
  allows (`runner.retries`, retryable kinds; after `runner.retry_delay_s`), else is a failure; a
  member cut by the deadline is cut;
- a task that failed as a whole (a lost worker, its timeout) is a failed attempt of every member.

So a member's attempts, the faults they draw and hence the members of every task are decided by
the seed and the persisted results of earlier tasks: a resumed run replays them. Under a round
deadline a chain starts nothing once it has passed, and its members are cut.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prefect.futures import PrefectFuture

from fedsweep import execution
from fedsweep.cell.cell import Cell
from fedsweep.failures import DeadlinePassed, Failure, failure_record, retryable
from fedsweep.rounds import deadline as deadlines
from fedsweep.rounds.batch import MemberTask, groups
from fedsweep.rounds.plan import RoundPlan
from fedsweep.rounds.refs import ClientRef, RoundStart
from flows.pending import Ran, next_done
from tasks.train import train_client_batch

log = logging.getLogger("fedsweep")


@dataclass(eq=False)
class _Chain:
    """A group's members still training (their next task each), and whether the next task retries."""

    members: dict[int, MemberTask]
    retrying: bool = False
    sent: list[MemberTask] = field(default_factory=list)


@dataclass
class Trained:
    """What the train step returns beside its results: member tasks reused from an earlier run, the
    GPU out-of-memory splits the batches made, their peak GPU memory (None off CUDA)."""

    reused: int = 0
    splits: int = 0
    gpu_mem_mb: float | None = None


def train_batches(
    cell: Cell,
    plan: RoundPlan,
    start: RoundStart,
    parallel: int,
    deadline: deadlines.Deadline | None,
    limit: int,
) -> tuple[list[ClientRef], list[Failure], Trained, set[int]]:
    """Run the round's groups of at most `limit` clients (or as many as fit) as chains of batch tasks;
    returns (results, failures, what else it measured, clients the deadline cut)."""
    runner, blobs, global_ref = cell.runner, cell.stores.blobs, start["global"]
    cut = set(deadline.earlier) if deadline else set()
    late = (lambda: False) if deadline is None else deadline.passed
    width = max(1, min(parallel, execution.executor_for(cell).width))
    inline = width == 1
    per_client = runner.granularity == "client"
    trained = Trained()
    results: list[ClientRef] = []
    failures: list[Failure] = []
    pending: dict[PrefectFuture | Ran, _Chain] = {}

    def member(client: int, epoch: int, input_ref: ClientRef | None, attempt: int = 1) -> MemberTask:
        epochs = plan.epochs[client]
        span = epochs - epoch if per_client else 1
        return MemberTask(client=client, epoch=epoch, epochs=epochs, span=span, input_ref=input_ref,
                          state_ref=plan.states[client], attempt=attempt)  # fmt: skip

    def submit(chain: _Chain, refresh: bool = False) -> None:
        if chain.retrying and runner.retry_delay_s > 0:
            time.sleep(runner.retry_delay_s)
        chain.retrying = False
        chain.sent = [chain.members[c] for c in sorted(chain.members)]
        task = train_client_batch.with_options(retries=0, timeout_seconds=None, refresh_cache=refresh)
        args = (cell, plan.round, _name(plan.round, chain.sent), chain.sent, global_ref,
                deadline.at if deadline else None)  # fmt: skip
        future = Ran(task(*args, return_state=True)) if inline else task.submit(*args)
        pending[future] = chain

    def failed(chain: _Chain, spec: MemberTask, error: BaseException | dict[str, Any]) -> None:
        """A member's attempt failed: its next attempt joins the chain's next task, or it is a failure."""
        client = spec["client"]
        again = error["retryable"] if isinstance(error, dict) else retryable(error)
        if again and spec["attempt"] <= runner.retries:
            chain.members[client] = {**spec, "attempt": spec["attempt"] + 1}
            chain.retrying = True
            return
        del chain.members[client]
        if isinstance(error, dict):
            record = Failure(client=client, kind=error["kind"], message=error["message"],
                             retries=runner.retries if error["retryable"] else 0)  # fmt: skip
        else:
            record = failure_record(client, error, retries=runner.retries)
        failures.append(record)
        log.warning(
            "round %d: client %d failed at epoch %d: %s", plan.round, client, spec["epoch"], record["message"]
        )

    waiting = [
        _Chain(members={c: member(c, 0, None) for c in group})
        for group in groups(sorted(set(plan.epochs) - cut), limit, width)
    ]
    for chain in waiting[:width]:
        submit(chain)
    waiting = waiting[width:]
    while pending:
        future = next_done(pending, deadline)
        if future is None:  # chains still running a grace period past the deadline: left behind
            break
        chain = pending.pop(future)
        outcome = future.result(raise_on_failure=False)
        cached = future.state.name == "Cached"
        if isinstance(outcome, DeadlinePassed):
            cut.update(chain.members)
            chain.members.clear()
        elif isinstance(outcome, BaseException):
            for spec in chain.sent:
                failed(chain, spec, outcome)
        elif cached and not all(blobs.holds(ref) for ref in outcome["done"].values()):
            log.warning("round %d: cached result of batch %s is stale; recomputing", plan.round,
                        _name(plan.round, chain.sent))  # fmt: skip
            submit(chain, refresh=True)
            continue
        else:
            trained.reused += len(outcome["done"]) if cached else 0
            trained.splits += outcome["splits"]
            if "gpu_mem_mb" in outcome:
                trained.gpu_mem_mb = max(trained.gpu_mem_mb or 0.0, outcome["gpu_mem_mb"])
            for spec in chain.sent:
                client = spec["client"]
                ref = outcome["done"].get(str(client))
                if ref is None:
                    error = outcome["failed"][str(client)]
                    if error["kind"] == "deadline":
                        cut.add(client)
                        del chain.members[client]
                    else:
                        failed(chain, spec, error)
                elif ref["epochs_done"] < plan.epochs[client]:
                    chain.members[client] = member(client, ref["epochs_done"], ref)
                else:
                    results.append(ref)
                    del chain.members[client]
        if chain.members and not late():
            submit(chain)
            continue
        cut.update(chain.members)
        if waiting and not late():  # a chain ended: start the next group's
            submit(waiting.pop(0))
    cut.update(c for chain in waiting for c in chain.members)
    cut.update(c for chain in pending.values() for c in chain.members)
    if trained.splits:
        log.info("round %d: %d batch split(s) after running out of GPU memory", plan.round, trained.splits)
    results.sort(key=lambda r: r["client"])
    return results, sorted(failures, key=lambda f: f["client"]), trained, cut


def _name(round: int, members: list[MemberTask]) -> str:
    """`r3-c0-c9`: the round and the client range; `-e1` past the first task, `-a2` on a retry."""
    name = f"r{round}-c{members[0]['client']}-c{members[-1]['client']}"
    epoch, attempt = min(m["epoch"] for m in members), max(m["attempt"] for m in members)
    return name + (f"-e{epoch}" if epoch else "") + (f"-a{attempt}" if attempt > 1 else "")
