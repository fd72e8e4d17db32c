"""The work of one round, as functions over a cell's stores (`fedsweep.cell.CellEnv`).

Each step reads its inputs by reference (blob key + sha256) and writes its output as a blob,
returning a small JSON-able reference. Jobs (fedsweep/jobs.py) run these wherever the execution
seam puts them; a step is a pure function of its inputs, so its persisted reference is a valid
checkpoint and a retry or a resumed run recomputes the same bytes.

Blob keys of a round live under `round-000007/`, pruned once round 7's checkpoint is committed:

    round-000007/global        the global model the round starts from (+ what the strategy
                               broadcasts to clients, `server.*`)
    round-000007/server        the server state the round starts from (never sent to clients)
    round-000007/c00003-e1     client 3 after local epoch (or chunk of local_steps) 1 (+ `opt.*`)

Aggregating round 7 writes `round-000008/global` and `round-000008/server`: the next round's start.
Client states live in their own store (fedsweep/checkpoint/clients.py).
"""

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import torch

from fedsweep.cell import CellEnv, CellRuntime
from fedsweep.checkpoint.blobs import BlobStore, Ref
from fedsweep.checkpoint.store import round_dir
from fedsweep.data.base import Split
from fedsweep.faults.base import ClientRound
from fedsweep.rng import generator
from fedsweep.schedule import chunks_for, lr_at, steps_in_chunk
from fedsweep.selection.sketch import update_sketch
from fedsweep.strategies.base import ClientFailure, ClientMeta, ClientResult, ClientResults, RoundContext
from fedsweep.train import LocalConfig, evaluation_hits, train_epoch
from fedsweep.weights import Params

_OPT, _SERVER = "opt.", "server."


def split_prefixed(tensors: Params, prefix: str) -> tuple[Params, Params]:
    """(tensors without the prefix, tensors with it, prefix removed)."""
    plain = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    tagged = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return plain, tagged


def join_prefixed(plain: Params, tagged: Params, prefix: str) -> Params:
    return {**plain, **{prefix + k: v for k, v in tagged.items()}}


def prune_rounds(blobs: BlobStore, *, up_to: int) -> None:
    """Drop the intermediate blobs of every round <= `up_to` (their checkpoint is committed)."""
    for name in blobs.storage.list(""):
        if name.startswith("round-") and name[6:].isdigit() and int(name[6:]) <= up_to:
            blobs.prune(name)


def start_round(env: CellEnv, *, round: int, params: Params, server_state: Params) -> dict[str, Ref]:
    """Write what round `round` starts from; returns {"global": ref, "server": ref}."""
    broadcast = env.runtime.strategy.broadcast(server_state)
    refs = {}
    for name, tensors in (("global", join_prefixed(params, broadcast, _SERVER)), ("server", server_state)):
        key = f"{round_dir(round)}/{name}"
        refs[name] = {"key": key, "sha256": env.blobs.put(key, tensors, {"round": round})}
    return refs


def read_global(blobs: BlobStore, ref: Ref) -> tuple[Params, Params]:
    """(params, what the strategy broadcasts) from a round's global reference."""
    return split_prefixed(blobs.read(ref), _SERVER)


def local_work(rt: CellRuntime) -> tuple[int, str]:
    """(the local work a round asks of every client, its unit): (local_epochs, "epochs") or
    (local_steps, "steps")."""
    knobs = rt.settings.knobs
    return (knobs.local_epochs, "epochs") if knobs.local_steps is None else (knobs.local_steps, "steps")


def client_round(rt: CellRuntime, round: int, client: int) -> ClientRound:
    """The coordinates every fault decision about this client in this round is drawn from; with
    `local_steps`, the faults' `local_epochs` counts steps (a straggler runs x of τ steps)."""
    knobs = rt.settings.knobs
    return ClientRound(
        seed=knobs.seed,
        round=round,
        client=client,
        local_epochs=local_work(rt)[0],
        affordable=rt.affordable_work(client),
    )


def planned_work(rt: CellRuntime, round: int, client: int) -> int:
    """Local epochs (or steps, with `local_steps`) this client runs this round (fewer for a straggler)."""
    return rt.faults.epochs_to_run(client_round(rt, round, client))


def tasks_for(rt: CellRuntime, client: int, work: int) -> int:
    """The client's chain of tasks for `work` (fedsweep/schedule.py): epochs, or chunks of steps."""
    if rt.settings.knobs.local_steps is None:
        return work
    return chunks_for(work, num_samples=int(rt.clients[client].numel()), batch_size=rt.local.batch_size)


def max_batches(rt: CellRuntime, round: int, client: int, task: int) -> int | None:
    """The steps task `task` of the client's round runs: None (a whole epoch) without `local_steps`."""
    if rt.settings.knobs.local_steps is None:
        return None
    return steps_in_chunk(
        task,
        steps=planned_work(rt, round, client),
        num_samples=int(rt.clients[client].numel()),
        batch_size=rt.local.batch_size,
    )


def local_config(rt: CellRuntime, round: int) -> LocalConfig:
    """The client optimiser's settings in round `round`: the lr under `lr_schedule`."""
    schedule = rt.settings.knobs.lr_schedule
    lr = lr_at(rt.local.lr, round=round, milestones=schedule.milestones, gamma=schedule.gamma)
    return rt.local if lr == rt.local.lr else dataclasses.replace(rt.local, lr=lr)


def is_finite(params: Params) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in params.values() if v.is_floating_point())


def client_epoch(
    env: CellEnv,
    *,
    round: int,
    client: int,
    epoch: int,
    epochs: int,
    global_ref: Ref,
    input_ref: Ref | None,
    state_ref: Ref | None,
    attempt: int = 1,
) -> Ref:
    """Train `client` for local epoch `epoch` (of `epochs` this round), from `input_ref` or the global.

    Injected faults act first (they may raise, hang or slow down), on attempt `attempt`, so a
    retry draws again and a replay of the same run fails in the same places. After the last epoch
    the strategy's `finish_client` writes the client's new state, the faults' `after_training`
    shapes the update the client sends, and the reference says whether that update is finite.
    """
    rt = env.runtime
    rt.faults.before_epoch(client_round(rt, round, client).at(epoch=epoch, attempt=attempt))
    global_params, broadcast = read_global(env.blobs, global_ref)
    client_state = env.client_states.get(state_ref)
    local = local_config(rt, round)
    params, opt_state = (
        (global_params, {}) if input_ref is None else split_prefixed(env.blobs.read(input_ref), _OPT)
    )
    out = train_epoch(
        model=rt.thread_model(),
        data=rt.data.train,
        indices=rt.clients[client],
        params=params,
        optimizer_state=opt_state,
        global_params=global_params,
        strategy=rt.strategy,
        server_state=broadcast,
        client_state=client_state,
        cfg=local,
        generator=generator(rt.settings.knobs.seed, "batches", round, client, epoch),
        max_batches=max_batches(rt, round, client, epoch),
    )
    steps = out.steps + (input_ref or {}).get("steps", 0)
    meta = {
        "loss": out.loss,
        "loss_sq": out.loss_sq,
        "steps": out.steps,
        "num_samples": int(rt.clients[client].numel()),
    }
    ref = {"client": client, "epochs_done": epoch + 1, "attempt": attempt, "previous_client_state": state_ref}
    sent = out.params
    if epoch + 1 == epochs:
        new_state = rt.strategy.finish_client(
            params=out.params,
            global_params=global_params,
            server_state=broadcast,
            client_state=client_state,
            steps=steps,
            lr=local.lr,
        )
        ref["client_state"] = env.client_states.put(client=client, round=round, state=new_state)
        sent = rt.faults.after_training(client_round(rt, round, client), out.params, global_params)
        ref["valid"] = is_finite(sent) and math.isfinite(out.loss)
        dim = rt.selector.update_sketch_dim
        if dim and ref["valid"]:  # a selector that compares clients' updates (fedsweep/selection/sketch.py)
            ref["sketch"] = update_sketch(sent, global_params, dim=dim, seed=rt.settings.knobs.seed)
    key = f"{round_dir(round)}/c{client:05d}-e{epoch}"
    sha = env.blobs.put(key, join_prefixed(sent, out.optimizer_state, _OPT), meta)
    return {**meta, **ref, "key": key, "sha256": sha, "steps": steps}


class BlobResults(ClientResults):
    """The round's client results as references, read from the blob stores on each iteration;
    `weights` (client -> relative aggregation weight, the selector's) replace the sample counts."""

    def __init__(self, env: CellEnv, refs: list[Ref], weights: dict[int, float] | None = None) -> None:
        self.env, self.refs = env, sorted(refs, key=lambda r: r["client"])
        rt = env.runtime
        work = local_work(rt)[0]  # epochs_* count tasks: epochs, or chunks of local_steps
        self._meta = [
            ClientMeta(
                client=r["client"],
                num_samples=r["num_samples"],
                loss=r["loss"],
                steps=r["steps"],
                epochs_done=r["epochs_done"],
                epochs_planned=tasks_for(rt, r["client"], work),
                weight=None if weights is None else float(weights[r["client"]]),
            )
            for r in self.refs
        ]

    @property
    def meta(self) -> list[ClientMeta]:
        return self._meta

    def __iter__(self) -> Iterator[ClientResult]:
        states = self.env.client_states
        for meta, ref in zip(self._meta, self.refs):
            params, _ = split_prefixed(self.env.blobs.read(ref), _OPT)
            yield ClientResult(
                **vars(meta),
                params=params,
                client_state=states.get(ref.get("client_state")),
                previous_client_state=states.get(ref.get("previous_client_state")),
            )


def aggregate(
    env: CellEnv,
    *,
    round: int,
    start: dict[str, Ref],
    results: list[Ref],
    failures: list[dict[str, Any]],
    selected: list[int],
    keep: bool,
    weights: dict[int, float] | None = None,
) -> dict[str, Ref]:
    """The start of round `round + 1`: the strategy's aggregate of `results` (valid updates only,
    weighted by the selector's `weights` if any, else by sample count), or, with `keep`, round
    `round`'s model and server state unchanged (the policy skipped it)."""
    params, _ = read_global(env.blobs, start["global"])
    server_state = env.blobs.read(start["server"])
    if not keep:
        out = env.runtime.strategy.aggregate(
            global_params=params,
            results=BlobResults(env, results, weights),
            failures=[
                ClientFailure(client=f["client"], kind=f["kind"], message=f["message"]) for f in failures
            ],
            server_state=server_state,
            context=RoundContext(round=round, selected=tuple(selected), num_clients=env.runtime.num_clients),
        )
        params, server_state = out.params, out.server_state
    return start_round(env, round=round + 1, params=params, server_state=server_state)


def probe_loss(env: CellEnv, ref: Ref, *, round: int, client: int, samples: int | None) -> float:
    """A client's mean training loss at the global model `ref` (power-of-choice's probe,
    fedsweep/selection/base.py): on all its samples, or on `samples` of them drawn without replacement
    from generator(seed, "probe", round, client), so a retry or a resumed run draws the same ones."""
    rt = env.runtime
    params, _ = read_global(env.blobs, ref)
    indices = rt.clients[client]
    if samples is not None and samples < len(indices):
        draw = torch.randperm(
            len(indices), generator=generator(rt.settings.knobs.seed, "probe", round, client)
        )
        indices = indices[draw[:samples]]
    if len(indices) == 0:
        return float("nan")
    data = rt.data.train
    _, loss_sum = evaluation_hits(
        model=rt.thread_model(),
        data=Split(data.x[indices], data.y[indices]),
        params=params,
        batch_size=rt.settings.knobs.eval_batch_size,
    )
    return loss_sum / len(indices)


def evaluate_global(env: CellEnv, ref: Ref, *, part: int = 0, parts: int = 1) -> dict[str, float]:
    """Sums for a global model on part `part` of `parts` equal slices of the cell's test split
    (`combine_evaluations` turns the parts' sums into accuracy and loss)."""
    rt = env.runtime
    params, _ = read_global(env.blobs, ref)
    test = rt.data.test
    lo, hi = len(test) * part // parts, len(test) * (part + 1) // parts
    hits, loss_sum = evaluation_hits(
        model=rt.thread_model(),
        data=Split(test.x[lo:hi], test.y[lo:hi]),
        params=params,
        batch_size=rt.settings.knobs.eval_batch_size,
    )
    sums: dict[str, Any] = {"correct": int(hits.sum()), "loss_sum": loss_sum, "count": hi - lo}
    if rt.test_owner is not None:  # clients with test samples of their own: their sums, one by one
        owner = rt.test_owner[lo:hi]
        sums["client_correct"] = (
            torch.bincount(owner, weights=hits.double(), minlength=rt.num_clients).long().tolist()
        )
        sums["client_count"] = torch.bincount(owner, minlength=rt.num_clients).tolist()
    return sums


def combine_evaluations(parts: list[dict[str, Any]]) -> dict[str, float]:
    """{"accuracy", "loss"} over the whole test split from its parts' sums, added in part order;
    with per-client sums, also the spread of accuracy across clients (`client_accuracy`)."""
    count = sum(p["count"] for p in parts)
    if count == 0:
        raise ValueError("evaluate: the test split is empty")
    out = {
        "accuracy": sum(p["correct"] for p in parts) / count,
        "loss": sum(p["loss_sum"] for p in parts) / count,
    }
    if "client_count" in parts[0]:
        correct = [sum(c) for c in zip(*(p["client_correct"] for p in parts), strict=True)]
        counts = [sum(c) for c in zip(*(p["client_count"] for p in parts), strict=True)]
        out.update(client_accuracy([h / n for h, n in zip(correct, counts, strict=True) if n]))
    return out


def client_accuracy(accuracies: list[float]) -> dict[str, float]:
    """Fairness across clients (as q-FFL, Li et al. 2020, and Ditto report it): the mean and the
    population standard deviation of the clients' test accuracies, and the mean accuracy of the worst
    10 % of clients (at least one client)."""
    if not accuracies:
        return {}
    n = len(accuracies)
    mean = sum(accuracies) / n
    worst = sorted(accuracies)[: max(1, math.ceil(n / 10))]
    return {
        "client_accuracy_mean": mean,
        "client_accuracy_std": math.sqrt(sum((a - mean) ** 2 for a in accuracies) / n),
        "client_accuracy_worst10": sum(worst) / len(worst),
    }
