"""A compact, seeded sketch of a client's update, for selectors that compare clients by their updates.

Clustered sampling's Algorithm 2 (Fraboni et al. 2021) and DivFL (Balakrishnan et al. 2022) compare
clients by their last update Δθ_i = θ_i − θ_global. Their authors' code keeps every client's whole
update (a model per client: 100 clients × a 1M-parameter model is 400 MB, a million clients is out
of reach) and compares them exactly. fedsweep keeps a count sketch of it instead (Charikar, Chen,
Farach-Colton 2002): every coordinate j of every floating tensor goes to bucket h(j) ∈ [0, D) with
sign s(j) ∈ {−1, +1}, and

    sketch[d] = Σ_{j : h(j) = d} s(j) · Δθ_j .

h and s are drawn once per cell from `generator(seed, "sketch", tensor name)`, so all clients of a
cell share them and sketches are comparable. The sketch is linear, and inner products (hence L2
distances and angles) are preserved in expectation, with a relative error of order 1/√D.

A selector asks for sketches with `update_sketch_dim = D > 0` (fedsweep/selection/base.py); the
client job then computes one from the update it sends, after its last local epoch: O(parameters)
time and transient memory, no extra pass over the data, training bytes untouched. It travels in the
job's JSON reference (D floats, exact: float32 → Python float → JSON and back) and reaches the
selector in `ClientFeedback.sketch`.
"""

import torch

from fedsweep.rng import generator
from fedsweep.weights import Params


def count_sketch(update: Params, *, dim: int, seed: int) -> torch.Tensor:
    """float32 [dim]: the count sketch of `update`'s floating tensors (summed in float64, by key)."""
    if dim <= 0:
        raise ValueError(f"sketch dimension must be > 0, got {dim}")
    out = torch.zeros(dim, dtype=torch.float64)
    for name in sorted(update):
        value = update[name]
        if not value.is_floating_point():
            continue
        flat = value.detach().reshape(-1).to("cpu", torch.float64)
        gen = generator(seed, "sketch", name)
        bucket = torch.randint(0, dim, (flat.numel(),), generator=gen)
        sign = torch.randint(0, 2, (flat.numel(),), generator=gen).to(torch.float64) * 2 - 1
        # bincount adds in index order on the CPU: the same bytes on every run
        out += torch.bincount(bucket, weights=flat * sign, minlength=dim)
    return out.to(torch.float32)


def update_sketch(sent: Params, global_params: Params, *, dim: int, seed: int) -> list[float]:
    """The sketch of Δθ = sent − global, as a JSON-able list (what a client job returns)."""
    delta = {k: v - global_params[k] for k, v in sent.items() if v.is_floating_point() and k in global_params}
    return count_sketch(delta, dim=dim, seed=seed).tolist()
