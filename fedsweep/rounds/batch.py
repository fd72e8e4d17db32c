"""Batched clients (`runner.batch_clients`): which cells batch, how a round's clients are grouped, and
a batch's work, as pure functions of the cell and small references (a job any engine runs).

- **Which cells.** `off` (the default): one client at a time (fedsweep/rounds/work.py). `N`: at most N
  clients per batch, on any device (the plan refused cells that cannot batch). `auto`: batched on
  CUDA when the model and strategy allow (fedsweep/batched/support.py), as many clients per batch
  as the GPU's free memory holds; one at a time on the CPU, where batching is slower (DESIGN), and,
  with an INFO line saying why, for a cell that cannot batch.
- **Groups.** The round's training clients, in id order, in consecutive groups: of N under `N`;
  under `auto` one per slot of the engine (one GPU in this process: one group; a Dask cluster: one per
  worker), each job filling its GPU as memory allows. A group is a chain of batch tasks (flows/batches.py)
  as a client is a chain of client-epoch tasks; a member whose attempt fails leaves the batch and
  joins the group's next task with its next attempt, as the retry policy allows.
- **A batch's work** (`batch_task`): each member's faults for its attempt first
  (`before_batched_epoch`: a member that raises leaves the batch; one whose sleep passes the task
  timeout fails it, one whose sleep passes the round's deadline is cut, the others wait out the
  longest sleep once); then one batched local epoch (or chunk of `local_steps`) of the members
  (fedsweep/batched/train.py), split in halves on a GPU out of memory; then each member's result as
  a one-by-one task writes it (`task_result`: its blob, and after its last task its new state, its
  update as the faults shape it, its sketch). Members' tasks may differ (a retried member is a task
  behind its group); each draws its own batches from its own coordinates.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from fedsweep.batched.memory import chunks, clients_that_fit, in_halves, measure, peak_mb, reset_peak
from fedsweep.batched.support import refusal
from fedsweep.batched.train import Member, train_batch_epoch
from fedsweep.cell.cell import Cell
from fedsweep.cell.methods import may_batch
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.config.errors import ConfigError
from fedsweep.failures import DeadlinePassed, failure_kind, retryable
from fedsweep.faults.base import interruptible_sleep
from fedsweep.rng import generator
from fedsweep.rounds.blobs import read_global
from fedsweep.rounds.refs import ClientRef
from fedsweep.rounds.work import client_round, max_batches, task_result, task_start, train_split
from fedsweep.train import EpochOut, LocalConfig
from fedsweep.weights import Params

log = logging.getLogger("fedsweep")
AUTO = 0  # `batching`: as many clients per batch as fit


class MemberTask(TypedDict):
    """A member of a batch task: its next task `epoch` of `epochs`, `span` of them in this job."""

    client: int
    epoch: int
    epochs: int
    span: int
    input_ref: ClientRef | None
    state_ref: BlobRef | None
    attempt: int


class MemberFailure(TypedDict):
    """A member's failed attempt: `kind` (fedsweep/failures.py), whether a retry may help."""

    kind: str
    message: str
    retryable: bool


class BatchAnswer(TypedDict):
    """What a batch job returns: members done with their span, failed members (by client id, as
    text: JSON keys), the OOM splits it made, and its peak GPU memory (on CUDA)."""

    done: dict[str, ClientRef]
    failed: dict[str, MemberFailure]
    splits: int
    gpu_mem_mb: NotRequired[float]


_REFUSED: dict[str, str | None] = {}  # cell key -> why it cannot batch (None: it can), per process


def batching(cell: Cell) -> int | None:
    """The most clients a batch of this cell holds (`AUTO`: as many as fit), or None: one by one."""
    setting = cell.runner.batch_clients
    if not may_batch(setting, cell.methods.device):
        return None
    if cell.key not in _REFUSED:
        _REFUSED[cell.key] = refusal(
            model=cell.methods.model,
            strategy=cell.methods.strategy,
            data=cell.data.data.train,
            cfg=cell.methods.local,
        )
        if _REFUSED[cell.key] is not None and setting == "auto":
            log.info(
                "cell %s trains one client at a time (runner.batch_clients=auto): %s",
                cell.name,
                _REFUSED[cell.key],
            )
    reason = _REFUSED[cell.key]
    if reason is not None:
        if setting == "auto":
            return None
        raise ConfigError(f"runner.batch_clients={setting}: {reason}", key="runner.batch_clients")
    return AUTO if setting == "auto" else int(setting)


def groups(clients: list[int], limit: int, slots: int) -> list[list[int]]:
    """`clients` (in id order) in consecutive groups: of `limit` at most, or with `AUTO`, `slots`
    groups of near-equal size (the first ones a client larger)."""
    clients = sorted(clients)
    if not clients:
        return []
    if limit != AUTO:
        return [clients[i : i + limit] for i in range(0, len(clients), limit)]
    parts = max(1, min(slots, len(clients)))
    size, extra = divmod(len(clients), parts)
    out, at = [], 0
    for part in range(parts):
        n = size + (part < extra)
        out.append(clients[at : at + n])
        at += n
    return out


@dataclass(eq=False)
class _Running:
    """A member within a batch job: its spec, its next task, its last reference and what it trains from."""

    spec: MemberTask
    epoch: int
    ref: ClientRef | None
    params: Params
    optimizer_state: Params
    client_state: Params


def batch_task(
    cell: Cell, *, round: int, global_ref: BlobRef, members: list[MemberTask], seconds_left: float | None
) -> BatchAnswer:
    """Train `members` together for their span of tasks from `global_ref` (see the module docstring);
    `seconds_left` until the round's deadline when it has one."""
    device = cell.methods.device
    reset_peak(device)
    started = time.monotonic()
    global_params, broadcast = read_global(cell.stores.blobs, global_ref)
    local = cell.methods.local_at(round)
    answer = BatchAnswer(done={}, failed={}, splits=0)
    running = {
        m["client"]: _Running(
            m,
            m["epoch"],
            m["input_ref"],
            *task_start(cell, global_params, m["input_ref"]),
            client_state=cell.stores.client_states.get(m["state_ref"]),
        )
        for m in sorted(members, key=lambda m: m["client"])
    }
    for offset in range(max((m["span"] for m in members), default=0)):
        due = {c: r for c, r in running.items() if offset < r.spec["span"]}
        ready = _past_faults(cell, round, due, answer, started, seconds_left)
        for c in set(due) - set(ready):
            del running[c]  # failed: recorded in the answer, its partial work dropped
        if not ready:
            continue
        outs, splits = _train(cell, round, global_params, broadcast, local, {c: running[c] for c in ready})
        answer["splits"] += splits
        for c, out in zip(ready, outs, strict=True):
            r = running[c]
            r.ref = task_result(
                cell,
                out,
                round=round,
                client=c,
                epoch=r.epoch,
                epochs=r.spec["epochs"],
                input_ref=r.ref,
                state_ref=r.spec["state_ref"],
                attempt=r.spec["attempt"],
                global_params=global_params,
                broadcast=broadcast,
                client_state=r.client_state,
                lr=local.lr,
            )
            r.epoch, r.params, r.optimizer_state = r.epoch + 1, out.params, out.optimizer_state
    answer["done"] = {str(c): r.ref for c, r in running.items() if r.ref is not None}
    peak = peak_mb(device)
    if peak is not None:
        answer["gpu_mem_mb"] = peak
    return answer


def _past_faults(
    cell: Cell, round: int, due: dict[int, _Running], answer: BatchAnswer, started: float, left: float | None
) -> list[int]:
    """The members whose faults let this task of theirs run (the others recorded in `answer`), after
    waiting out the longest sleep of theirs."""
    timeout = cell.runner.task_timeout_s
    delays: dict[int, float] = {}
    for c, r in due.items():
        ctx = client_round(cell, round, c).at(epoch=r.epoch, attempt=r.spec["attempt"])
        try:
            delay = cell.methods.faults.before_batched_epoch(ctx)
            if left is not None and time.monotonic() - started + delay >= left:
                raise DeadlinePassed("the round deadline passes during this attempt")
            if 0 < timeout <= delay:
                raise TimeoutError(f"hung for {delay:g} s, past runner.task_timeout_s ({timeout:g} s)")
        except Exception as exc:  # noqa: BLE001 - a member's failure is data; the batch goes on
            answer["failed"][str(c)] = MemberFailure(
                kind=failure_kind(exc), message=f"{type(exc).__name__}: {exc}"[:500], retryable=retryable(exc)
            )
            continue
        delays[c] = delay
    wait = max(delays.values(), default=0.0)
    if wait > 0:
        interruptible_sleep(wait)
    return sorted(delays)


def _train(
    cell: Cell,
    round: int,
    global_params: Params,
    broadcast: Params,
    local: LocalConfig,
    running: dict[int, _Running],
) -> tuple[list[EpochOut], int]:
    """One task of each running member, batched: in chunks of what fits (`auto` on CUDA), each split
    in halves on a GPU out of memory."""
    methods, clients = cell.methods, sorted(running)
    model, data = methods.thread_model(), train_split(cell)

    def members(chosen: Sequence[int]) -> list[Member]:
        """Fresh generators for every try: a re-run after a split draws the same batches."""
        return [
            Member(
                indices=cell.data.clients[c],
                params=running[c].params,
                optimizer_state=running[c].optimizer_state,
                client_state=running[c].client_state,
                generator=generator(cell.knobs.seed, "batches", round, c, running[c].epoch),
                max_batches=max_batches(cell, round, c, running[c].epoch),
            )
            for c in chosen
        ]

    def train(chosen: Sequence[int]) -> list[EpochOut]:
        return train_batch_epoch(
            model=model,
            data=data,
            members=members(chosen),
            global_params=global_params,
            strategy=methods.strategy,
            server_state=broadcast,
            cfg=local,
        )

    fit = None
    if cell.runner.batch_clients == "auto":
        trial = clients[: min(2, len(clients))]
        fit = clients_that_fit(
            methods.device,
            lambda: measure(methods.device, lambda: train(trial), len(trial)),
            key=(id(model), local.batch_size),
        )
    outs: list[EpochOut] = []
    splits = 0
    for chunk in chunks(clients, fit):
        done, split = in_halves(chunk, train, what=f"round {round}")
        outs += done
        splits += split
    return outs, splits
