"""Dropout for batched clients: each client's masks drawn from its own seed, whoever shares its batch.

Under `torch.func.vmap` a random operation draws for the whole batch from one global generator, so a
client's dropout masks would depend on which clients share its batch. `SeededDropout` replaces
`nn.Dropout` in the batched trainer's copy of the model: its mask is a counter-based hash of
(the client's step seed, the layer, the element's position), computed with integer tensor
operations that vmap batches like any other. The step seed comes from the client's batch generator
(`generator(seed, "batches", round, client, epoch)`, the one that shuffles its data) and the step, so
the masks are seeded by coordinates and a retry, a resumed run or another grouping of the clients
draws exactly the same ones. They are not the masks of the one-by-one path (torch's generator), only
the same distribution: keep rate 1 − p, kept values scaled by 1 / (1 − p), as `nn.Dropout`.
"""

import copy
import weakref

import torch
from torch import nn

_M32 = 0xFFFFFFFF
# Odd multipliers below 2**31: a 32-bit value times one stays below 2**63 (no int64 overflow).
_A, _B, _LAYER = 0x7FEB352D, 0x4A1D39E9, 0x2C1B3C6D


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply rounds) of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _A) & _M32
    x = x ^ (x >> 15)
    x = (x * _B) & _M32
    return x ^ (x >> 16)


def uniform_like(x: torch.Tensor, seed: torch.Tensor, layer: int) -> torch.Tensor:
    """Floats in [0, 1) shaped like `x`, a function of (seed, layer, position) only."""
    position = torch.arange(x.numel(), device=x.device, dtype=torch.int64).reshape(x.shape)
    lo, hi = seed & _M32, (seed >> 32) & _M32
    h = _mix(_mix(position ^ lo) ^ hi ^ ((layer * _LAYER) & _M32))
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


class SeededDropout(nn.Module):
    """`nn.Dropout(p)` whose mask is drawn from the `seed` buffer (a client's step seed under vmap)."""

    def __init__(self, p: float, layer: int) -> None:
        super().__init__()
        self.p, self.layer = float(p), layer
        self.register_buffer("seed", torch.zeros((), dtype=torch.int64), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        seed: torch.Tensor = self.seed  # type: ignore[assignment]  # a buffer: functional_call sets it
        keep = uniform_like(x, seed, self.layer) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


_COPIES: "weakref.WeakKeyDictionary[nn.Module, tuple[nn.Module, list[str]]]" = weakref.WeakKeyDictionary()


def with_seeded_dropout(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """(a copy of `model` whose `nn.Dropout` layers are `SeededDropout`s, the names of their seed
    buffers), made once per model instance; the model itself when it has none. Only the copy's
    structure is used: parameters and buffers come from the caller (`functional_call`)."""
    if not any(type(m) is nn.Dropout for m in model.modules()):
        return model, []
    made = _COPIES.get(model)
    if made is None:
        made = _COPIES[model] = _replaced(model)
    return made


def _replaced(model: nn.Module) -> tuple[nn.Module, list[str]]:
    copied = copy.deepcopy(model)
    seeds: list[str] = []
    for name, module in list(copied.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                path = f"{name}.{child_name}" if name else child_name
                setattr(module, child_name, SeededDropout(child.p, layer=len(seeds)))
                seeds.append(f"{path}.seed")
    return copied, seeds


def step_seeds(model_seed: int, steps: int) -> torch.Tensor:
    """int64 [steps]: one seed per local step from the client's model seed (splitmix64, 62 bits)."""
    out = []
    for step in range(steps):
        z = (model_seed + (step + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        out.append((z ^ (z >> 31)) >> 2)
    return torch.tensor(out, dtype=torch.int64)
