"""The global model on the cell's test split, in parts that any engine can run side by side, and a
client's loss at the global model (a selector's probe)."""

import math
from typing import Any

import torch

from fedsweep.cell.cell import Cell
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.data.base import Split
from fedsweep.rng import generator
from fedsweep.rounds.blobs import read_global
from fedsweep.train import evaluation_hits


def probe_loss(cell: Cell, ref: BlobRef, *, round: int, client: int, samples: int | None) -> float:
    """A client's mean training loss at the global model `ref` (power-of-choice's probe,
    fedsweep/selection/base.py): on all its samples, or on `samples` of them drawn without replacement
    from generator(seed, "probe", round, client), so a retry or a resumed run draws the same ones."""
    params, _ = read_global(cell.stores.blobs, ref)
    indices = cell.data.clients[client]
    if samples is not None and samples < len(indices):
        draw = torch.randperm(len(indices), generator=generator(cell.knobs.seed, "probe", round, client))
        indices = indices[draw[:samples]]
    if len(indices) == 0:
        return float("nan")
    data = cell.data.data.train
    _, loss_sum = evaluation_hits(
        model=cell.methods.thread_model(),
        data=Split(data.x[indices], data.y[indices]),
        params=params,
        batch_size=cell.knobs.eval_batch_size,
    )
    return loss_sum / len(indices)


def evaluate_global(cell: Cell, ref: BlobRef, *, part: int = 0, parts: int = 1) -> dict[str, Any]:
    """Sums for a global model on part `part` of `parts` equal slices of the cell's test split
    (`combine_evaluations` turns the parts' sums into accuracy and loss)."""
    params, _ = read_global(cell.stores.blobs, ref)
    test = cell.data.data.test
    lo, hi = len(test) * part // parts, len(test) * (part + 1) // parts
    hits, loss_sum = evaluation_hits(
        model=cell.methods.thread_model(),
        data=Split(test.x[lo:hi], test.y[lo:hi]),
        params=params,
        batch_size=cell.knobs.eval_batch_size,
    )
    sums: dict[str, Any] = {"correct": int(hits.sum()), "loss_sum": loss_sum, "count": hi - lo}
    owner_of = cell.data.test_owner
    if owner_of is not None:  # clients with test samples of their own: their sums, one by one
        owner, n = owner_of[lo:hi], cell.num_clients
        sums["client_correct"] = torch.bincount(owner, weights=hits.double(), minlength=n).long().tolist()
        sums["client_count"] = torch.bincount(owner, minlength=n).tolist()
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
