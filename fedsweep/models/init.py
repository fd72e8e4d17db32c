"""Deterministic model construction: initial weights depend only on a seed.

Module constructors draw their initial weights from torch's global CPU generator, and there is no
generator argument to pass instead. `build_model` is therefore the one sanctioned use of global RNG
state in fedsweep, isolated by `torch.random.fork_rng`: the caller's global state is restored on
exit, and whatever ran before cannot change the weights. The generator is shared by the process's
threads (cells of a sweep run in threads with `runner.parallel_cells` > 1), so whoever constructs
modules holds `GLOBAL_RNG` meanwhile: a construction in another thread would draw from, or reseed,
the generator between this one's seeding and its draws.
"""

import threading
from collections.abc import Callable

import torch
from torch import nn

GLOBAL_RNG = threading.RLock()  # held while torch's global CPU generator is seeded or drawn from


def build_model(
    factory: Callable[..., nn.Module],
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    generator_seed: int,
) -> nn.Module:
    """`factory(input_shape=..., num_classes=...)` built on CPU with weights seeded by `generator_seed`."""
    # devices=[]: construction happens on CPU, so only the CPU generator is forked and seeded;
    # torch.manual_seed would also reseed every CUDA generator, which fork_rng(devices=[]) does not restore.
    with GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(generator_seed))
        return factory(input_shape=tuple(int(d) for d in input_shape), num_classes=int(num_classes))
