"""Generators seeded by coordinates, never by global RNG state.

Every random draw in fedsweep comes from `generator(seed, "what", round, client, ...)`. The same
coordinates always give the same stream, so a task is a pure function of its inputs: a retry or a
resumed run recomputes exactly the same bytes.
"""

import hashlib

import torch


def derive_seed(*coords: object) -> int:
    """A 63-bit seed that depends only on the coordinates' text."""
    text = "\x1f".join(repr(c) for c in coords).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def generator(*coords: object) -> torch.Generator:
    """A CPU torch generator seeded by the coordinates."""
    gen = torch.Generator()
    gen.manual_seed(derive_seed(*coords))
    return gen
