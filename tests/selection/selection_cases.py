"""A fixed population and one call of a selector's round (probe, then select on one generator)."""

from pathlib import Path

import torch

from fedsweep.rng import generator
from fedsweep.selection.base import Population, Selection, Selector

CONF = Path(__file__).resolve().parents[2] / "conf"


def population(*sizes: int) -> Population:
    return Population(num_samples=torch.tensor(sizes, dtype=torch.int64))


def play(
    selector: Selector,
    pop: Population,
    k: int,
    *,
    round: int = 1,
    seed: int = 0,
    state: dict | None = None,
    losses: dict[int, float] | None = None,
    available: torch.Tensor | None = None,
) -> tuple[list[int] | None, Selection]:
    """(the probed candidates or None, the selection) of one round, as fedsweep/rounds/plan.py plays it;
    `losses` answers the probe (client -> loss)."""
    draws = generator(seed, "select", round)
    available = torch.arange(pop.num_clients) if available is None else available
    asked = selector.probe(
        round=round, available=available, k=k, generator=draws, state=state or {}, population=pop
    )
    probes = {c: losses[c] for c in asked.clients} if asked is not None else None
    chosen = selector.select(
        round=round,
        available=available,
        k=k,
        generator=draws,
        state=state or {},
        population=pop,
        probes=probes,
    )
    return (asked.clients if asked is not None else None), chosen
