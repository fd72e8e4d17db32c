"""rpow-d: no probe; candidates ranked by the loss each last reported, unseen clients first."""

import math

import torch
from selection_cases import play, population

from fedsweep.selection.base import ClientFeedback
from fedsweep.selection.rpow_d import RPowD


def test_unseen_clients_first_then_the_largest_reported_loss() -> None:
    # Prepare: d = everyone; clients 0-3 reported losses, 4 and 5 never trained
    pop = population(*[10] * 6)
    selector = RPowD(d=6)
    _, first = play(selector, pop, 2)
    state = selector.observe(
        round=1,
        feedback=[ClientFeedback(client=c, num_samples=10, loss=[0.3, 0.9, 0.5, 0.1][c]) for c in range(4)],
        state=first.state,
    )
    # Execute
    asked, chosen = play(selector, pop, 3, round=2, state=state)
    # Assert
    assert asked is None
    assert math.isinf(first.state["loss"][0]) and first.clients == [0, 1]  # all unseen: smaller ids
    assert chosen.clients == [1, 4, 5]  # the two unseen, then 0.9
    assert chosen.weights == {1: 1.0, 4: 1.0, 5: 1.0}


def test_a_failed_client_keeps_its_loss_and_the_state_is_a_tensor_per_client() -> None:
    # Prepare
    state = {"loss": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)}
    # Execute
    after = RPowD().observe(
        round=3,
        feedback=[
            ClientFeedback(client=0, failure="oom"),
            ClientFeedback(client=2, num_samples=5, loss=0.25),
        ],
        state=state,
    )
    # Assert
    assert after["loss"].tolist() == [1.0, 2.0, 0.25]
    assert state["loss"].tolist() == [1.0, 2.0, 3.0]
