"""The work of one round, as functions over a cell's runtime and its blob store.

Each step reads its inputs by reference (blob key + sha256) and writes its output as a blob,
returning a small JSON-able reference. The Prefect tasks in tasks/ are thin wrappers around these:
a step is a pure function of its inputs, so its persisted reference is a valid checkpoint and a
retry or a resumed run recomputes the same bytes.

Blob keys of a round live under `round-000007/`, pruned once that round's checkpoint is committed:

    round-000007/global        the global model the round starts from (+ server state, `server.*`)
    round-000007/c00003-e1     client 3 after local epoch 1 (+ momentum buffers, `opt.*`)
    round-000007/aggregated    the new global model (+ server state)
"""

import math
from collections.abc import Iterator
from typing import Any

import torch

from fedsweep.cell import CellRuntime
from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.storage import CheckpointError
from fedsweep.faults.base import ClientRound
from fedsweep.rng import generator
from fedsweep.strategies.base import ClientFailure, ClientResult
from fedsweep.data.base import Split
from fedsweep.train import evaluation_sums, train_epoch
from fedsweep.weights import Params

Ref = dict[str, Any]
_OPT, _SERVER = "opt.", "server."


def round_prefix(round: int) -> str:
    return f"round-{round:06d}"


def split_prefixed(tensors: Params, prefix: str) -> tuple[Params, Params]:
    """(tensors without the prefix, tensors with it, prefix removed)."""
    plain = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    tagged = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return plain, tagged


def join_prefixed(plain: Params, tagged: Params, prefix: str) -> Params:
    return {**plain, **{prefix + k: v for k, v in tagged.items()}}


def prune_rounds(blobs: BlobStore, *, up_to: int) -> None:
    """Drop the intermediate blobs of every round <= `up_to` (their checkpoint is committed)."""
    for name in blobs.storage.list(""):
        if name.startswith("round-") and name[6:].isdigit() and int(name[6:]) <= up_to:
            blobs.prune(name)


def put_global(blobs: BlobStore, *, round: int, params: Params, server_state: Params) -> Ref:
    """Write the model a round starts from; its reference is the input of every epoch-0 task."""
    key = f"{round_prefix(round)}/global"
    sha = blobs.put(key, join_prefixed(params, server_state, _SERVER), {"round": round})
    return {"key": key, "sha256": sha}


def ref_ok(blobs: BlobStore, ref: Ref) -> bool:
    """Whether the blob a (cached) reference points to is still there, with the same bytes."""
    try:
        blobs.get(ref["key"], ref["sha256"])
    except CheckpointError:
        return False
    return True


def read_global(blobs: BlobStore, ref: Ref) -> tuple[Params, Params]:
    """(params, server_state) from a global or aggregated reference."""
    tensors, _ = blobs.get(ref["key"], ref["sha256"])
    return split_prefixed(tensors, _SERVER)


def client_round(rt: CellRuntime, round: int, client: int) -> ClientRound:
    """The coordinates every fault decision about this client in this round is drawn from."""
    return ClientRound(
        seed=int(rt.config["seed"]), round=round, client=client, local_epochs=int(rt.config["local_epochs"])
    )


def planned_epochs(rt: CellRuntime, round: int, client: int) -> int:
    """Local epochs this client runs this round (fewer for a straggler)."""
    return rt.faults.epochs_to_run(client_round(rt, round, client))


def client_epoch(
    rt: CellRuntime, blobs: BlobStore, *, round: int, client: int, epoch: int, global_ref: Ref,
    input_ref: Ref | None, attempt: int = 1,
) -> Ref:
    """Train `client` for local epoch `epoch` of `round`, starting from `input_ref` (or the global).

    Injected faults act first (they may raise, hang or slow down), on attempt `attempt`, so a
    retry draws again and a replay of the same run fails in the same places.
    """
    rt.faults.before_epoch(client_round(rt, round, client).at(epoch=epoch, attempt=attempt))
    global_params, server_state = read_global(blobs, global_ref)
    if input_ref is None:
        params, opt_state = global_params, {}
    else:
        tensors, _ = blobs.get(input_ref["key"], input_ref["sha256"])
        params, opt_state = split_prefixed(tensors, _OPT)
    seed = int(rt.config["seed"])
    out = train_epoch(
        model=rt.thread_model(), data=rt.data.train, indices=rt.clients[client], params=params,
        optimizer_state=opt_state, global_params=global_params, strategy=rt.strategy,
        server_state=server_state, client_state=rt.strategy.init_client_state(global_params),
        cfg=rt.local, generator=generator(seed, "batches", round, client, epoch),
    )
    key = f"{round_prefix(round)}/c{client:05d}-e{epoch}"
    meta = {"loss": out.loss, "steps": out.steps, "num_samples": int(rt.clients[client].numel())}
    sha = blobs.put(key, join_prefixed(out.params, out.optimizer_state, _OPT), meta)
    steps = out.steps + (input_ref or {}).get("steps", 0)
    return {
        **meta, "key": key, "sha256": sha, "client": client, "epochs_done": epoch + 1, "steps": steps,
        "attempt": attempt,
    }


def is_finite(params: Params) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in params.values() if v.is_floating_point())


def aggregate(
    rt: CellRuntime, blobs: BlobStore, *, round: int, global_ref: Ref, results: list[Ref],
    failures: list[dict[str, Any]],
) -> tuple[Ref, list[dict[str, Any]]]:
    """Aggregate the clients' final epochs into the next global model; returns (ref, all failures).

    Updates are read one at a time in client order (a running sum, never all in memory); an update
    with NaN/Inf is rejected and reported as a failure instead of poisoning the model.
    """
    global_params, server_state = read_global(blobs, global_ref)
    rejected: list[dict[str, Any]] = []

    def stream() -> Iterator[ClientResult]:
        for ref in sorted(results, key=lambda r: r["client"]):
            tensors, _ = blobs.get(ref["key"], ref["sha256"])
            params, _ = split_prefixed(tensors, _OPT)
            params = rt.faults.after_training(client_round(rt, round, ref["client"]), params, global_params)
            if not is_finite(params) or not math.isfinite(ref["loss"]):
                rejected.append({"client": ref["client"], "kind": "invalid_update", "message": "NaN/Inf"})
                continue
            yield ClientResult(
                client=ref["client"], num_samples=ref["num_samples"], params=params, loss=ref["loss"],
                epochs_done=ref["epochs_done"], epochs_planned=int(rt.config["local_epochs"]),
            )

    failed = [ClientFailure(client=f["client"], kind=f["kind"], message=f["message"]) for f in failures]
    out = rt.strategy.aggregate(
        global_params=global_params, results=stream(), failures=failed, server_state=server_state
    )
    key = f"{round_prefix(round)}/aggregated"
    sha = blobs.put(key, join_prefixed(out.params, out.server_state, _SERVER), {"round": round})
    return {"key": key, "sha256": sha}, [*failures, *rejected]


def evaluate_global(rt: CellRuntime, blobs: BlobStore, ref: Ref, *, part: int = 0, parts: int = 1) -> dict[str, float]:
    """Sums for a global model on part `part` of `parts` equal slices of the cell's test split
    (`combine_evaluations` turns the parts' sums into accuracy and loss)."""
    params, _ = read_global(blobs, ref)
    test = rt.data.test
    lo, hi = len(test) * part // parts, len(test) * (part + 1) // parts
    correct, loss_sum = evaluation_sums(
        model=rt.thread_model(), data=Split(test.x[lo:hi], test.y[lo:hi]), params=params,
        batch_size=int(rt.config["eval_batch_size"]),
    )
    return {"correct": correct, "loss_sum": loss_sum, "count": hi - lo}


def combine_evaluations(parts: list[dict[str, float]]) -> dict[str, float]:
    """{"accuracy", "loss"} over the whole test split from its parts' sums, added in part order."""
    count = sum(p["count"] for p in parts)
    if count == 0:
        raise ValueError("evaluate: the test split is empty")
    return {"accuracy": sum(p["correct"] for p in parts) / count, "loss": sum(p["loss_sum"] for p in parts) / count}
