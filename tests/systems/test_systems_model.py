"""The system model (fedsweep/systems/): durations worked by hand, seeded draws, distribution shapes."""

import pytest
import torch

from fedsweep.systems.availability import OnOff
from fedsweep.systems.base import Devices, work_samples
from fedsweep.systems.distributions import Constant, LogNormal, Pareto, Uniform
from fedsweep.systems.fleet import Fleet


def fleet(**changes) -> Fleet:
    base = {
        "speed": LogNormal(median=100.0, sigma=1.0),
        "down_bps": LogNormal(median=1e6, sigma=1.0),
        "up_bps": Uniform(low=1e5, high=2e5),
    }
    return Fleet(**{**base, **changes})


def test_durations_worked_by_hand() -> None:
    # Prepare: three clients; a 1000-byte model
    devices = Devices(
        speed=torch.tensor([10.0, 100.0, 50.0], dtype=torch.float64),
        down_bps=torch.tensor([1000.0, 500.0, 250.0], dtype=torch.float64),
        up_bps=torch.tensor([100.0, 1000.0, 500.0], dtype=torch.float64),
    )
    work = work_samples(torch.tensor([20, 50, 0]), epochs=2)
    # Execute
    seconds = devices.seconds(work, model_bytes=1000)
    # Assert: 1000/down + 2·n/speed + 1000/up
    assert work.tolist() == [40, 100, 0]
    assert seconds.tolist() == [1.0 + 4.0 + 10.0, 2.0 + 1.0 + 1.0, 4.0 + 0.0 + 2.0]


def test_local_steps_count_whole_passes_then_the_last_partial_one() -> None:
    # Prepare: n = 10 samples in batches of 4 is 3 batches per pass (4, 4, 2)
    n = torch.tensor([10, 10, 10, 3, 0])
    # Execute
    samples = work_samples(n, steps=torch.tensor([1, 3, 5, 2, 4]), batch_size=4)
    # Assert: 4; one pass = 10; a pass and 2 batches = 18; 3 samples (one batch) twice = 6; nothing
    assert samples.tolist() == [4, 10, 18, 6, 0]


def test_the_fleet_is_a_pure_function_of_the_seed() -> None:
    # Execute
    a, b, other = (fleet().devices(seed=s, num_clients=50) for s in (0, 0, 1))
    # Assert
    assert all(torch.equal(getattr(a, q), getattr(b, q)) for q in ("speed", "down_bps", "up_bps"))
    assert not torch.equal(a.speed, other.speed)
    assert not torch.equal(a.speed / 100.0, a.down_bps / 1e6), "each quantity has its own stream"


def test_heavy_tails_have_the_quantiles_of_their_distribution() -> None:
    # Prepare
    gen = torch.Generator().manual_seed(0)
    # Execute
    pareto = Pareto(scale=1.0, shape=1.5).sample(200_000, gen)
    lognormal = LogNormal(median=100.0, sigma=2.0).sample(200_000, gen)
    # Assert: Pareto's survival (1/x)^1.5 (P(X > 10) = 0.0316, P(X > 100) = 0.001); lognormal's median
    # 100 and its 97.7 % quantile 100·e^(2·2) ≈ 5460 (two sigmas): a 50× spread, a long right tail
    assert pareto.min() >= 1.0
    assert float((pareto > 10).double().mean()) == pytest.approx(10**-1.5, rel=0.05)
    assert float((pareto > 100).double().mean()) == pytest.approx(1e-3, rel=0.2)
    assert float(lognormal.median()) == pytest.approx(100.0, rel=0.02)
    assert float(lognormal.quantile(0.97725)) == pytest.approx(100.0 * torch.e**4, rel=0.05)


def test_constant_and_uniform() -> None:
    gen = torch.Generator().manual_seed(0)
    assert Constant(value=3.0).sample(4, gen).tolist() == [3.0] * 4
    drawn = Uniform(low=2.0, high=4.0).sample(100_000, gen)
    assert (
        float(drawn.min()) >= 2.0
        and float(drawn.max()) <= 4.0
        and float(drawn.mean()) == pytest.approx(3.0, abs=0.01)
    )


def test_a_million_clients_is_one_vectorised_draw() -> None:
    # Execute
    devices = fleet(availability=OnOff(on_rounds=3, off_rounds=1)).devices(seed=0, num_clients=1_000_000)
    seconds = devices.seconds(work_samples(torch.full((1_000_000,), 50), epochs=1), model_bytes=4_000)
    online = fleet(availability=OnOff(on_rounds=3, off_rounds=1)).available(
        seed=0, round=7, num_clients=1_000_000
    )
    # Assert
    assert seconds.shape == (1_000_000,) and seconds.dtype == torch.float64 and bool((seconds > 0).all())
    assert float(online.double().mean()) == pytest.approx(0.75, abs=0.005)


def test_on_off_cycles_per_client_from_a_seeded_phase() -> None:
    # Prepare
    pattern = OnOff(on_rounds=2, off_rounds=3)
    # Execute: 10 rounds of 6 clients
    online = torch.stack([pattern.online(seed=0, round=r, num_clients=6) for r in range(1, 11)])
    # Assert: every client is on 2 rounds then off 3, with period 5, at its own phase
    assert online.sum(dim=0).tolist() == [4] * 6
    assert torch.equal(online[:5], online[5:])
    assert torch.equal(
        online, torch.stack([pattern.online(seed=0, round=r, num_clients=6) for r in range(1, 11)])
    )
    assert len({tuple(col) for col in online.T.tolist()}) > 1, "phases differ between clients"


def test_affordable_work_inverts_work_samples() -> None:
    from fedsweep.systems.base import affordable_work

    # Epochs: 95 samples of budget over 20 samples per epoch is 4 epochs; steps of 4 over n = 10 (3
    # batches per pass: 4, 4, 2): 27 samples fit 2 passes (20) and one batch (4): 7 steps
    assert affordable_work(95.0, num_samples=20, batch_size=None) == 4
    assert affordable_work(27.0, num_samples=10, batch_size=4) == 7
    assert work_samples(torch.tensor([10]), steps=7, batch_size=4).item() == 24
    assert work_samples(torch.tensor([10]), steps=8, batch_size=4).item() == 28
    assert affordable_work(-1.0, num_samples=10, batch_size=None) == 0
