"""Active FL: loss valuations, sampling frequencies that follow the softmax, the cut, the uniform
share, untried clients tried first, and the state through the checkpoint format."""

import math

import pytest
import torch

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.rng import generator
from fedsweep.selection.active_fl import ActiveFL, loss_valuation, sampling_weights
from fedsweep.selection.base import ClientFeedback, Population

POP4 = Population(num_samples=torch.full((4,), 10))


def valued(values: list[float]) -> dict[str, torch.Tensor]:
    return {"value": torch.tensor(values, dtype=torch.float64)}


def test_valuation_is_sqrt_samples_times_mean_loss() -> None:
    # Execute / Assert: Σ loss / sqrt(n) with mean loss 0.5 over 16 samples = 8 / 4 = 2
    assert loss_valuation(torch.tensor([16, 4]), torch.tensor([0.5, 3.0])).tolist() == [2.0, 6.0]


def test_sampling_frequencies_follow_the_softmax() -> None:
    # Prepare: no cut, no uniform share, one client per round; α2 = 0.01 and values 0..300
    afl = ActiveFL(alpha1=0.0, alpha3=0.0)
    state = valued([0.0, 100.0, 200.0, 300.0])
    expected = torch.tensor([math.exp(i) for i in range(4)]) / sum(math.exp(i) for i in range(4))
    counts = torch.zeros(4)
    # Execute
    for r in range(2000):
        counts[
            afl.select(
                round=r,
                available=torch.arange(4),
                k=1,
                generator=generator(0, "s", r),
                state=state,
                population=POP4,
            ).clients
        ] += 1
    # Assert: within 4 standard deviations of exp(α2 v) / Σ exp(α2 v) = [0.032, 0.087, 0.237, 0.644]
    freq = counts / 2000
    assert ((freq - expected).abs() < 4 * (expected * (1 - expected) / 2000).sqrt()).all(), (freq, expected)


def test_the_lowest_alpha1_share_is_cut_and_the_rest_is_uniform() -> None:
    # Prepare: paper defaults, 8 clients: ⌊0.75 · 8⌋ = 6 cut, the 2 best kept; k = 4 -> ⌊0.9 · 4⌋ = 3
    # softmax draws, but only 2 are kept, so both are always in and 2 come uniformly from the other 6
    afl = ActiveFL()
    state = valued([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 70.0, 80.0])
    pop = Population(num_samples=torch.full((8,), 10))
    # Execute
    rounds = [
        afl.select(
            round=r,
            available=torch.arange(8),
            k=4,
            generator=generator(0, "s", r),
            state=state,
            population=pop,
        ).clients
        for r in range(600)
    ]
    # Assert
    assert all(len(c) == 4 and {6, 7} <= set(c) for c in rounds)
    others = torch.bincount(torch.tensor([c for cs in rounds for c in cs if c < 6]), minlength=6).double()
    assert ((others - 200).abs() < 60).all(), others  # each of 6: 600 · 2/6 = 200 expected


def test_weights_zero_the_smallest_and_break_ties_at_random() -> None:
    # Execute: all tied: which 3 of 4 are cut depends on the draw
    tied = torch.zeros(4, dtype=torch.float64)
    cuts = {tuple((sampling_weights(tied, 0.75, 0.01, generator(0, "s", r)) > 0).tolist()) for r in range(50)}
    w = sampling_weights(
        torch.tensor([5.0, 1.0, 9.0, 3.0], dtype=torch.float64), 0.5, 0.01, generator(0, "s", 0)
    )
    # Assert
    assert len(cuts) == 4
    assert w[1] == 0 and w[3] == 0 and w[2] == 1.0 and w[0] == pytest.approx(math.exp(-0.04))


def test_untried_clients_are_valued_at_the_best_known_value() -> None:
    # Prepare: clients 0-3 tried with low values, 4-7 never; cut ⌊0.5 · 8⌋ = 4
    afl = ActiveFL(alpha1=0.5, alpha3=0.0)
    state = valued([1.0, 2.0, 3.0, 4.0] + [math.nan] * 4)
    pop = Population(num_samples=torch.full((8,), 10))
    # Execute
    chosen = afl.select(
        round=2, available=torch.arange(8), k=4, generator=generator(0, "s", 2), state=state, population=pop
    ).clients
    # Assert: the untried are valued 4.0 (the best known), tying with client 3; the cut takes 1, 2, 3
    # and one of the five at 4.0, at random; the four kept are all drawn (k = 4, α3 = 0)
    assert len(chosen) == 4 and sum(c >= 4 for c in chosen) >= 3


def test_observe_values_reports_and_zeroes_failures() -> None:
    # Prepare
    afl = ActiveFL()
    state = valued([math.nan] * 3)
    # Execute
    out = afl.observe(
        round=1,
        state=state,
        feedback=[
            ClientFeedback(client=0, num_samples=25, loss=2.0),
            ClientFeedback(client=2, failure="oom"),
        ],
    )
    # Assert
    assert out["value"][0] == 10.0 and math.isnan(float(out["value"][1])) and out["value"][2] == 0.0
    assert math.isnan(float(state["value"][0]))  # the input state is not modified


def test_state_round_trips_through_the_checkpoint_format(tmp_path) -> None:
    # Prepare
    afl = ActiveFL()
    sel = afl.select(
        round=1,
        available=torch.arange(6),
        k=2,
        generator=generator(0, "s", 1),
        state={},
        population=Population(num_samples=torch.full((6,), 4)),
    )
    state = afl.observe(
        round=1,
        state=sel.state,
        feedback=[ClientFeedback(client=c, num_samples=4, loss=0.5 + c) for c in sel.clients],
    )
    store = CheckpointStore(storage=open_storage(str(tmp_path)))
    # Execute
    store.save(round=1, tensors={"selection": state}, meta={})
    back = store.load_latest().tensors["selection"]
    # Assert
    assert back["value"].dtype == torch.float64
    assert back["value"].numpy().tobytes() == state["value"].numpy().tobytes()


@pytest.mark.parametrize(("key", "value"), [("alpha1", 1.0), ("alpha3", -0.1), ("alpha2", -1.0)])
def test_impossible_settings_are_refused(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        ActiveFL(**{key: value})
