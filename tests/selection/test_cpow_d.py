"""cpow-d: pow-d whose probe asks for b samples per candidate (the runner's probe on b samples is
tested in tests/flows/test_selection_loop.py)."""

import torch
from selection_cases import play, population

from fedsweep.selection.cpow_d import CPowD
from fedsweep.selection.pow_d import PowD


def test_asks_for_b_samples_and_picks_like_pow_d() -> None:
    # Prepare
    pop = population(*[30] * 10)
    losses = {c: float((7 * c) % 10) for c in range(10)}
    # Execute
    candidates, chosen = play(CPowD(d=6, b=16), pop, 3, losses=losses)
    reference, same = play(PowD(d=6), pop, 3, losses=losses)
    asked = CPowD().probe(
        round=1, available=torch.arange(10), k=2, generator=torch.Generator(), state={}, population=pop
    )
    # Assert: same candidates and choice as pow-d from the same stream; b=64 by default
    assert candidates == reference and chosen == same
    assert asked.samples == 64 and len(asked.clients) == 4
