"""A client's local work in a round: how much it runs, and one task of it (an epoch, or a chunk of
`local_steps`), as a pure function of the cell and small references.

A task reads its inputs by reference (blob key + sha256) and writes its output as a blob
(fedsweep/rounds/blobs.py), returning a `ClientRef`; a retry or a resumed run recomputes the same
bytes, so its persisted reference is a valid checkpoint. Jobs (fedsweep/jobs.py) run it wherever the
engine puts them.
"""

import math
from typing import Any, cast

import torch

from fedsweep.cell.cell import Cell
from fedsweep.cell.data import on_device
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.data.base import Split
from fedsweep.faults.base import ClientRound
from fedsweep.rng import generator
from fedsweep.rounds.blobs import OPT, client_key, join_prefixed, read_global, split_prefixed
from fedsweep.rounds.refs import ClientRef
from fedsweep.schedule import chunks_for, steps_in_chunk
from fedsweep.selection.sketch import update_sketch
from fedsweep.train import EpochOut, train_epoch
from fedsweep.weights import Params


def local_work(cell: Cell) -> tuple[int, str]:
    """(the local work a round asks of every client, its unit): (local_epochs, "epochs") or
    (local_steps, "steps")."""
    knobs = cell.knobs
    if knobs.local_steps is None:
        return int(knobs.local_epochs or 0), "epochs"
    return knobs.local_steps, "steps"


def client_round(cell: Cell, round: int, client: int) -> ClientRound:
    """The coordinates every fault decision about this client in this round is drawn from; with
    `local_steps`, the faults' `local_epochs` counts steps (a straggler runs x of τ steps)."""
    return ClientRound(
        seed=cell.knobs.seed,
        round=round,
        client=client,
        local_epochs=local_work(cell)[0],
        affordable=cell.fleet.affordable_work(client),
    )


def planned_work(cell: Cell, round: int, client: int) -> int:
    """Local epochs (or steps, with `local_steps`) this client runs this round (fewer for a straggler)."""
    return cell.methods.faults.epochs_to_run(client_round(cell, round, client))


def tasks_for(cell: Cell, client: int, work: int) -> int:
    """The client's chain of tasks for `work` (fedsweep/schedule.py): epochs, or chunks of steps."""
    if cell.knobs.local_steps is None:
        return work
    return chunks_for(
        work, num_samples=int(cell.data.clients[client].numel()), batch_size=cell.knobs.batch_size
    )


def max_batches(cell: Cell, round: int, client: int, task: int) -> int | None:
    """The steps task `task` of the client's round runs: None (a whole epoch) without `local_steps`."""
    if cell.knobs.local_steps is None:
        return None
    return steps_in_chunk(
        task,
        steps=planned_work(cell, round, client),
        num_samples=int(cell.data.clients[client].numel()),
        batch_size=cell.knobs.batch_size,
    )


def is_finite(params: Params) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in params.values() if v.is_floating_point())


def client_task(
    cell: Cell,
    *,
    round: int,
    client: int,
    epoch: int,
    epochs: int,
    global_ref: BlobRef,
    input_ref: ClientRef | None,
    state_ref: BlobRef | None,
    attempt: int = 1,
) -> ClientRef:
    """Train `client` for its task `epoch` (of `epochs` this round), from `input_ref` or the global.

    Injected faults act first (they may raise, hang or slow down), on attempt `attempt`, so a
    retry draws again and a replay of the same run fails in the same places. After the last task
    the strategy's `finish_client` writes the client's new state, the faults' `after_training`
    shapes the update the client sends, and the reference says whether that update is finite.
    """
    methods, blobs, states = cell.methods, cell.stores.blobs, cell.stores.client_states
    methods.faults.before_epoch(client_round(cell, round, client).at(epoch=epoch, attempt=attempt))
    global_params, broadcast = read_global(blobs, global_ref)
    client_state = states.get(state_ref)
    local = methods.local_at(round)
    params, opt_state = task_start(cell, global_params, input_ref)
    out = train_epoch(
        model=methods.thread_model(),
        data=train_split(cell),
        indices=cell.data.clients[client],
        params=params,
        optimizer_state=opt_state,
        global_params=global_params,
        strategy=methods.strategy,
        server_state=broadcast,
        client_state=client_state,
        cfg=local,
        generator=generator(cell.knobs.seed, "batches", round, client, epoch),
        max_batches=max_batches(cell, round, client, epoch),
    )
    return task_result(
        cell,
        out,
        round=round,
        client=client,
        epoch=epoch,
        epochs=epochs,
        input_ref=input_ref,
        state_ref=state_ref,
        attempt=attempt,
        global_params=global_params,
        broadcast=broadcast,
        client_state=client_state,
        lr=local.lr,
    )


def task_start(cell: Cell, global_params: Params, input_ref: ClientRef | None) -> tuple[Params, Params]:
    """(parameters, optimiser state) a client's task starts from: the global model, or its last task's."""
    if input_ref is None:
        return global_params, {}
    return split_prefixed(cell.stores.blobs.read(input_ref), OPT)


def train_split(cell: Cell) -> Split:
    """The training split where the cell trains: on a GPU, moved there once per process and kept
    (fedsweep/cell/data.py); on the CPU, the shared tensors themselves."""
    return on_device(cell.data.data, "train", cell.methods.device)


def task_result(
    cell: Cell,
    out: EpochOut,
    *,
    round: int,
    client: int,
    epoch: int,
    epochs: int,
    input_ref: ClientRef | None,
    state_ref: BlobRef | None,
    attempt: int,
    global_params: Params,
    broadcast: Params,
    client_state: Params,
    lr: float,
) -> ClientRef:
    """The reference a client's task returns, its blob written: after its last task of the round, the
    strategy's `finish_client` writes its new state, the faults' `after_training` shapes the update it
    sends, and the reference says whether that update is finite (and carries its sketch)."""
    methods, blobs, states = cell.methods, cell.stores.blobs, cell.stores.client_states
    steps = out.steps + (input_ref["steps"] if input_ref is not None else 0)
    num_samples = int(cell.data.clients[client].numel())
    meta = {"loss": out.loss, "loss_sq": out.loss_sq, "steps": out.steps, "num_samples": num_samples}
    sent, extra = out.params, cast(dict[str, Any], {})
    if epoch + 1 == epochs:
        new_state = methods.strategy.finish_client(
            params=out.params,
            global_params=global_params,
            server_state=broadcast,
            client_state=client_state,
            steps=steps,
            lr=lr,
        )
        extra["client_state"] = states.put(client=client, round=round, state=new_state)
        sent = methods.faults.after_training(client_round(cell, round, client), out.params, global_params)
        extra["valid"] = is_finite(sent) and math.isfinite(out.loss)
        dim = methods.selector.update_sketch_dim
        if dim and extra["valid"]:  # a selector that compares clients' updates (fedsweep/selection/sketch.py)
            extra["sketch"] = update_sketch(sent, global_params, dim=dim, seed=cell.knobs.seed)
    key = client_key(round, client, epoch)
    sha = blobs.put(key, join_prefixed(sent, out.optimizer_state, OPT), meta)
    return ClientRef(
        key=key,
        sha256=sha,
        client=client,
        epochs_done=epoch + 1,
        attempt=attempt,
        steps=steps,
        num_samples=num_samples,
        loss=out.loss,
        loss_sq=out.loss_sq,
        previous_client_state=state_ref,
        **extra,  # type: ignore[typeddict-item]
    )
