"""Oort: hand-computed utilities, fast high-loss clients preferred, untried clients explored, the
pacer's moves, and its state surviving the checkpoint format bitwise."""

import math

import pytest
import torch

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.rng import generator
from fedsweep.selection.base import ClientFeedback, Population
from fedsweep.selection.oort import Oort, preferred_duration, speed_penalty, statistical_utility


def tried_state(oort: Oort, utility: list[float], durations: list[float], last_round: int = 1) -> dict:
    """The state after every client trained once in round `last_round` with these utilities/seconds."""
    st = oort.initial_state(len(utility))
    st["utility"] = torch.tensor(utility, dtype=torch.float64)
    st["duration"] = torch.tensor(durations, dtype=torch.float64)
    st["last_round"][:] = last_round
    st["count"][:] = 1
    return st


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal (NaN included), same dtype and shape."""
    return a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes()


def test_statistical_utility_is_samples_times_rms_loss() -> None:
    # Prepare: per-sample losses [1, 3] (mean square 5) for 2 samples, [2, 2, 2] for 3
    # Execute
    u = statistical_utility(torch.tensor([2, 3]), torch.tensor([5.0, 4.0]))
    # Assert: |B| * sqrt(mean square)
    assert u.tolist() == pytest.approx([2 * math.sqrt(5.0), 3 * 2.0])


def test_preferred_duration_and_penalty() -> None:
    # Prepare
    d = torch.tensor([4.0, 1.0, math.nan, 2.0, 8.0], dtype=torch.float64)
    # Execute / Assert: the known durations sorted are [1, 2, 4, 8]; index int(4 * p / 100)
    assert preferred_duration(d, 30.0) == 2.0
    assert preferred_duration(d, 50.0) == 4.0
    assert preferred_duration(d, 100.0) == math.inf
    assert speed_penalty(d, 2.0, 2.0).tolist()[:2] == [0.25, 1.0]
    assert speed_penalty(d, 2.0, 2.0)[4] == pytest.approx(1 / 16)
    assert speed_penalty(d, 2.0, 2.0)[2] == 1.0  # unknown duration: no penalty


def test_exploitation_prefers_fast_high_loss_clients_at_hand_computed_rates() -> None:
    # Prepare: utilities [10, 10, 40, 40], seconds [1, 4, 1, 4]; T at the 0th percentile = 1 s, so
    # the slow clients are penalised (1/4)^2. All tried in round 1, now round 2; no exploration.
    oort = Oort(exploration_factor=0.0, exploration_min=0.0, round_threshold=0.0)
    st = tried_state(oort, [10.0, 10.0, 40.0, 40.0], [1.0, 4.0, 1.0, 4.0])
    pop = Population(num_samples=torch.full((4,), 10))
    # Util = (min(U, clip) - 0.999·10) / (40 - 9.99) + sqrt(0.1 · ln 2 / 1), times the penalty
    stale = math.sqrt(0.1 * math.log(2))
    util = [(0.01 / 30.01 + stale), (0.01 / 30.01 + stale) / 16, (30.01 / 30.01 + stale), (1 + stale) / 16]
    expected = torch.tensor(util) / sum(util)
    counts = torch.zeros(4)
    # Execute: one client per round, 2000 independent rounds (the pool holds all: >= 10 x 1 + 1)
    for r in range(2000):
        chosen = oort.select(
            round=2,
            available=torch.tensor([0, 1, 2, 3]),
            k=1,
            generator=generator(0, "select", r),
            state=st,
            population=pop,
        ).clients
        counts[chosen] += 1
    # Assert: frequencies within 4 standard deviations of the hand-computed probabilities
    freq = counts / 2000
    assert expected[2] > 0.77  # the fast high-loss client dominates
    assert ((freq - expected).abs() < 4 * (expected * (1 - expected) / 2000).sqrt() + 1e-3).all(), (
        freq,
        expected,
    )


def test_untried_clients_fill_the_exploration_share_largest_and_fastest_first() -> None:
    # Prepare: clients 0-4 tried (huge utility), 5-9 untried; untried 5, 6 hold 100 samples, 7-9 one
    oort = Oort()
    st = oort.initial_state(10)
    st["utility"][:5], st["count"][:5], st["last_round"][:5] = 1e6, 1, 1
    pop = Population(num_samples=torch.tensor([10] * 5 + [100, 100, 1, 1, 1]))
    # Execute: ε = 0.9 · 0.98 = 0.882 -> ⌊4 · 0.882⌋ = 3 explored, 1 exploited
    picks = [
        oort.select(
            round=2,
            available=torch.arange(10),
            k=4,
            generator=generator(1, "select", r),
            state=st,
            population=pop,
        )
        for r in range(200)
    ]
    # Assert
    for pick in picks:
        assert len(pick.clients) == 4 and sum(c >= 5 for c in pick.clients) == 3
        assert float(pick.state["epsilon"]) == pytest.approx(0.882)
    # the two large untried clients are in nearly every round (∝ 100:100:1:1:1 without replacement)
    both = sum({5, 6} <= set(p.clients) for p in picks)
    assert both >= 190


def test_first_round_explores_only_and_slow_untried_clients_are_penalised() -> None:
    # Prepare: nobody tried; equal sizes; clients 0-1 take 1 s, 2-9 take 100 s; T at the 30th
    # percentile = 100 s... so use the 10th: sorted[1] = 1 s, the slow ones weigh (1/100)^2
    oort = Oort(round_threshold=10.0)
    pop = Population(
        num_samples=torch.full((10,), 50),
        expected_seconds=torch.tensor([1.0, 1.0] + [100.0] * 8, dtype=torch.float64),
    )
    # Execute
    picks = [
        oort.select(
            round=1,
            available=torch.arange(10),
            k=2,
            generator=generator(2, "select", r),
            state={},
            population=pop,
        ).clients
        for r in range(100)
    ]
    # Assert: the two fast clients nearly always
    assert sum(p == [0, 1] for p in picks) >= 98


def test_contract_sorted_distinct_deterministic_and_input_state_untouched() -> None:
    # Prepare
    oort = Oort()
    st = tried_state(oort, [float(i) for i in range(20)], [1.0] * 20)
    before = {k: v.clone() for k, v in st.items()}
    pop = Population(num_samples=torch.full((20,), 5))
    available = [19, 3, 7, 11, 0, 5, 8]
    # Execute
    ids = torch.tensor(sorted(available))
    a = oort.select(
        round=3, available=ids, k=5, generator=generator(0, "select", 3), state=st, population=pop
    )
    b = oort.select(
        round=3, available=ids, k=5, generator=generator(0, "select", 3), state=st, population=pop
    )
    big = oort.select(
        round=3, available=ids, k=50, generator=generator(0, "select", 3), state=st, population=pop
    )
    # Assert
    assert a.clients == b.clients and len(a.clients) == 5 and a.clients == sorted(set(a.clients))
    assert set(a.clients) <= set(available) and big.clients == sorted(available)
    assert all(same(st[k], before[k]) for k in st)


def test_observe_records_utility_round_seconds_and_failures() -> None:
    # Prepare
    oort = Oort()
    st = oort.initial_state(4)
    feedback = [
        ClientFeedback(client=1, num_samples=4, loss=1.5, loss_sq=4.0, steps=2, seconds=7.0),
        ClientFeedback(client=3, failure="transient"),
    ]
    # Execute
    out = oort.observe(round=5, feedback=feedback, state=st)
    # Assert
    assert out["utility"].tolist() == [0.0, 8.0, 0.0, 0.0]  # 4 · sqrt(4)
    assert out["last_round"].tolist() == [0, 5, 0, 5] and out["count"].tolist() == [0, 1, 0, 1]
    assert out["duration"][1] == 7.0 and math.isnan(float(out["duration"][3]))


@pytest.mark.parametrize(("third_window_entry", "threshold"), [(2.0, 35.0), (12.0, 25.0), (1.05, 30.0)])
def test_pacer_relaxes_when_flat_and_tightens_on_a_jump(third_window_entry: float, threshold: float) -> None:
    # Prepare: step 2, ring [r4, r1, r2, r3]; last window r1 + r2 = 2; current r3 + r4, r4 recorded
    # now from round 3's exploited clients 0 and 1 (utilities 0 and 0 -> 0)
    oort = Oort(pacer_step=2)
    st = oort.initial_state(2)
    st["pacer"] = torch.tensor([0.0, 1.0, 1.0, third_window_entry], dtype=torch.float64)
    st["exploited"] = torch.tensor([0, 1])
    st["last_round"][:] = 3
    # Execute
    oort._pace(st, 4)
    # Assert: |current - last| <= 0.1·last: +5; >= 5·last: -5; else unchanged
    assert float(st["threshold"]) == threshold


def test_pacer_records_the_mean_utility_of_last_rounds_exploited_clients() -> None:
    # Prepare
    oort = Oort(pacer_step=20)
    st = oort.initial_state(3)
    st["utility"] = torch.tensor([3.0, 5.0, 100.0], dtype=torch.float64)
    st["last_round"] = torch.tensor([6, 6, 6])
    st["exploited"] = torch.tensor([0, 1])
    # Execute
    oort._pace(st, 7)
    # Assert
    assert float(st["pacer"][7]) == pytest.approx(8.0 / 2.0001)


def test_state_survives_the_checkpoint_format_and_resumes_identically(tmp_path) -> None:
    # Prepare: three rounds of select/observe
    oort = Oort()
    pop = Population(
        num_samples=torch.arange(1, 31), expected_seconds=torch.linspace(1, 9, 30, dtype=torch.float64)
    )
    st: dict = {}
    for r in range(1, 4):
        sel = oort.select(
            round=r,
            available=torch.arange(30),
            k=5,
            generator=generator(0, "select", r),
            state=st,
            population=pop,
        )
        st = oort.observe(
            round=r,
            state=sel.state,
            feedback=[
                ClientFeedback(
                    client=c, num_samples=c + 1, loss=1.0, loss_sq=1.0 + c, steps=1, seconds=float(c)
                )
                for c in sel.clients
            ],
        )
    store = CheckpointStore(storage=open_storage(str(tmp_path)))
    # Execute
    store.save(round=3, tensors={"selection": st}, meta={})
    back = store.load_latest().tensors["selection"]
    nxt = [
        oort.select(
            round=4,
            available=torch.arange(30),
            k=5,
            generator=generator(0, "select", 4),
            state=s,
            population=pop,
        )
        for s in (st, back)
    ]
    # Assert
    assert sorted(back) == sorted(st) and all(same(back[k], st[k]) for k in st)
    assert nxt[0].clients == nxt[1].clients
    assert all(same(nxt[0].state[k], nxt[1].state[k]) for k in st)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("exploration_factor", 1.5),
        ("pacer_step", 0),
        ("round_threshold", 101.0),
        ("clip_bound", 0.0),
        ("sample_window", 0.5),
    ],
)
def test_impossible_settings_are_refused(key: str, value: float) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=key):
        Oort(**{key: value})


def test_a_failed_client_ranks_below_the_worst_that_trained() -> None:
    # Prepare: clients 0, 1 trained (utilities 100, 110), client 2 failed in the same round
    oort = Oort(exploration_factor=0.0, exploration_min=0.0)
    st = oort.initial_state(3)
    st = oort.observe(
        round=1,
        state=st,
        feedback=[
            ClientFeedback(client=0, num_samples=100, loss=1.0, loss_sq=1.0),
            ClientFeedback(client=1, num_samples=110, loss=1.0, loss_sq=1.0),
            ClientFeedback(client=2, failure="transient"),
        ],
    )
    # Execute: Util = clamp((U - 99.9) / 10.1, 0) + sqrt(0.1 ln 2): [0.0099 + s, 1 + s, 0 + s]
    scores = oort._exploit_scores(st, torch.tensor([0, 1, 2]), 2, torch.ones(3, dtype=torch.float64))
    # Assert
    stale = math.sqrt(0.1 * math.log(2))
    assert scores.tolist() == pytest.approx([0.1 / 10.1 + stale, 1.0 + stale, stale])
