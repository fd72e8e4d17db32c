"""The batched trainer against the one-by-one path: every strategy's local objective and every
built-in model after one step within 1e-5 relative in float32 (CPU), ragged and finished clients,
restored momentum, dropout seeded per client, and models or strategies that cannot batch."""

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedsweep.batched.support import model_refusal, refusal
from fedsweep.batched.train import Member, train_batch_epoch
from fedsweep.data.base import Split
from fedsweep.models.cnn import CNN
from fedsweep.models.init import build_model
from fedsweep.models.logreg import LogisticRegression
from fedsweep.models.mlp import MLP
from fedsweep.models.resnet import ResNet18
from fedsweep.strategies.base import Strategy
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.strategies.feddyn import FedDyn
from fedsweep.strategies.fednova import FedNova
from fedsweep.strategies.fedprox import FedProx
from fedsweep.strategies.scaffold import Scaffold
from fedsweep.train import EpochOut, LocalConfig, train_epoch
from fedsweep.weights import Params, state_of

TOLERANCE = 1e-5
CNN_SMALL = functools.partial(CNN, channels=(16, 32), hidden=128, padding=0)  # conf/model/cnn_small.yaml
MODELS = {"logreg": LogisticRegression, "mlp": MLP, "cnn_small": CNN_SMALL, "cnn": CNN}


def images(n: int = 240, seed: int = 0) -> Split:
    gen = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen))


def make(factory, data: Split, seed: int = 1) -> nn.Module:
    torch.set_num_threads(1)  # fedsweep's jobs train with runner.torch_threads=1
    return build_model(factory, input_shape=tuple(data.x.shape[1:]), num_classes=10, generator_seed=seed)


def noisy(params: Params, scale: float, seed: int) -> Params:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * scale for k, v in params.items()}


def both(model, data, strategy, cfg, clients, *, starts=None, opt=None, max_batches=None, states=None):
    """(one by one, batched): each client from its start, momentum and client state."""
    params = state_of(model)
    server = {
        k: v * 0.5 for k, v in noisy(strategy.broadcast(strategy.init_server_state(params)), 0.01, 9).items()
    }
    states = states or [noisy(strategy.init_client_state(params), 0.01, c) for c in range(len(clients))]
    starts = starts or [params] * len(clients)
    opt = opt or [{}] * len(clients)
    steps = max_batches or [None] * len(clients)
    one = [
        train_epoch(
            model=model,
            data=data,
            indices=idx,
            params=starts[c],
            optimizer_state=opt[c],
            global_params=params,
            strategy=strategy,
            server_state=server,
            client_state=states[c],
            cfg=cfg,
            generator=torch.Generator().manual_seed(c),
            max_batches=steps[c],
        )
        for c, idx in enumerate(clients)
    ]
    members = [
        Member(
            indices=idx,
            params=starts[c],
            optimizer_state=opt[c],
            client_state=states[c],
            generator=torch.Generator().manual_seed(c),
            max_batches=steps[c],
        )
        for c, idx in enumerate(clients)
    ]
    batched = train_batch_epoch(
        model=model,
        data=data,
        members=members,
        global_params=params,
        strategy=strategy,
        server_state=server,
        cfg=cfg,
    )
    return one, batched


def relative(a: Params, b: Params) -> float:
    """The largest relative difference over tensors: max |a − b| / max |a|."""
    return max(float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp(min=1e-12)) for k in a)


def assert_close(one: list[EpochOut], batched: list[EpochOut], tolerance: float = TOLERANCE) -> float:
    worst = 0.0
    for a, b in zip(one, batched, strict=True):
        assert list(a.params) == list(b.params)
        assert (a.steps, a.num_samples) == (b.steps, b.num_samples)
        assert list(a.optimizer_state) == list(b.optimizer_state)
        worst = max(worst, relative(a.params, b.params))
        if a.optimizer_state:
            worst = max(worst, relative(a.optimizer_state, b.optimizer_state))
        assert b.loss == pytest.approx(a.loss, rel=tolerance, abs=1e-7)
        assert b.loss_sq == pytest.approx(a.loss_sq, rel=tolerance, abs=1e-7)
    assert worst <= tolerance
    return worst


STRATEGIES = {
    "fedavg": FedAvg(),
    "fedprox": FedProx(mu=0.1),
    "scaffold": Scaffold(),
    "feddyn": FedDyn(alpha=0.1),
    "fednova": FedNova(local_momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategys_local_objective_after_one_step(name: str) -> None:
    # Prepare: cnn_small, three clients of different sizes, the strategy's state non-zero
    strategy, data = STRATEGIES[name], images()
    model = make(CNN_SMALL, data)
    momentum = 0.0 if name == "scaffold" else 0.9  # SCAFFOLD's option II needs plain SGD
    cfg = LocalConfig(lr=0.05, batch_size=32, momentum=momentum, weight_decay=1e-3)
    clients = [torch.arange(0, 64), torch.arange(64, 100), torch.arange(100, 240)]
    # Execute
    one, batched = both(model, data, strategy, cfg, clients, max_batches=[1, 1, 1])
    # Assert
    worst = assert_close(one, batched)
    print(f"{name}: max relative difference after one step {worst:.2e}")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_builtin_model_after_one_step(name: str) -> None:
    # Prepare
    data = images(96)
    model = make(MODELS[name], data)
    cfg = LocalConfig(lr=0.05, batch_size=32)
    # Execute
    one, batched = both(
        model, data, FedProx(mu=0.01), cfg, [torch.arange(0, 40), torch.arange(40, 96)], max_batches=[1, 1]
    )
    # Assert
    assert model_refusal(model) is None
    worst = assert_close(one, batched)
    print(f"{name}: max relative difference after one step {worst:.2e}")


def test_a_whole_epoch_with_ragged_clients_clipping_and_restored_momentum() -> None:
    # Prepare: clients of 0, 5, 37 and 70 samples (0, 1, 2 and 3 steps), momentum restored from an
    # earlier epoch for two of them, clipping on
    data = images(112)
    model = make(functools.partial(MLP, hidden=32), data)
    cfg = LocalConfig(lr=0.1, batch_size=32, momentum=0.9, weight_decay=1e-2, clip_norm=0.5)
    clients = [torch.arange(0, 0), torch.arange(0, 5), torch.arange(5, 42), torch.arange(42, 112)]
    first, _ = both(model, data, FedAvg(), cfg, clients)
    starts = [o.params for o in first]
    opt = [first[0].optimizer_state, {}, first[2].optimizer_state, {}]
    # Execute
    one, batched = both(model, data, FedAvg(), cfg, clients, starts=starts, opt=opt)
    # Assert: a finished client stopped moving; each reports its own steps
    assert [b.steps for b in batched] == [0, 1, 2, 3]
    assert all(torch.equal(batched[0].params[k], starts[0][k]) for k in starts[0])
    assert batched[0].loss == 0.0 and batched[0].optimizer_state == {}
    assert_close(one, batched, tolerance=1e-4)  # an epoch: a few steps of rounding drift


def test_local_steps_cut_clients_at_different_steps() -> None:
    data = images(160)
    model = make(LogisticRegression, data)
    cfg = LocalConfig(lr=0.05, batch_size=16, momentum=0.5)
    clients = [torch.arange(0, 80), torch.arange(80, 160)]
    one, batched = both(model, data, FedProx(mu=0.1), cfg, clients, max_batches=[2, 5])
    assert [b.steps for b in batched] == [2, 5]
    assert_close(one, batched)


class DropoutMLP(nn.Module):
    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(784, 32),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(32, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_dropout_is_seeded_per_client_whoever_shares_the_batch() -> None:
    # Prepare
    data = images(64)
    model = make(DropoutMLP, data)
    params, cfg = state_of(model), LocalConfig(lr=0.1, batch_size=16)
    a, b = torch.arange(0, 32), torch.arange(32, 64)

    def run(clients: list[tuple[torch.Tensor, int]]) -> list[EpochOut]:
        members = [
            Member(
                indices=i,
                params=params,
                optimizer_state={},
                client_state={},
                generator=torch.Generator().manual_seed(s),
            )
            for i, s in clients
        ]
        return train_batch_epoch(
            model=model,
            data=data,
            members=members,
            global_params=params,
            strategy=FedAvg(),
            server_state={},
            cfg=cfg,
        )

    before = torch.get_rng_state()
    # Execute
    pair = run([(a, 1), (b, 2)])
    again = run([(a, 1), (b, 2)])
    other_mates = run([(a, 1), (a, 3), (b, 4)])
    same_data_other_seed = run([(a, 5), (b, 2)])
    # Assert: the same bytes again; client a's result does not depend on its batch-mates beyond
    # rounding; another seed draws other masks; the global RNG is untouched
    assert all(torch.equal(pair[0].params[k], again[0].params[k]) for k in params)
    assert relative(pair[0].params, other_mates[0].params) < 1e-5
    assert relative(pair[0].params, same_data_other_seed[0].params) > 1e-3
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_trains_close_to_float32(dtype: str) -> None:
    data = images(64)
    model = make(CNN_SMALL, data)
    clients = [torch.arange(0, 32), torch.arange(32, 64)]
    full, _ = both(model, data, FedAvg(), LocalConfig(lr=0.05, batch_size=32), clients)
    half, batched = both(
        model, data, FedAvg(), LocalConfig(lr=0.05, batch_size=32, amp=True, amp_dtype=dtype), clients
    )
    for f, h, b in zip(full, half, batched, strict=True):
        # bfloat16 keeps 8 bits of mantissa: batched and one by one agree to its rounding, both near float32
        assert relative(h.params, b.params) < 1e-2 and relative(f.params, b.params) < 1e-1
        assert b.loss == pytest.approx(h.loss, rel=1e-2)
        gap, drift = relative(h.params, b.params), relative(f.params, b.params)
        print(f"{dtype}: batched vs one by one {gap:.1e}, vs float32 {drift:.1e}")


class SneakyStrategy(FedAvg):
    """Edits gradients in place without the functional form."""

    def correct_gradients(self, *, named_params, server_state, client_state) -> None:
        for p in named_params.values():
            p.grad.mul_(0.5)


class RandomInside(nn.Module):
    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(784, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.linear(x.flatten(1)), 0.5, training=True)  # not an nn.Dropout


@pytest.mark.parametrize(
    ("factory", "strategy", "reason"),
    [
        (ResNet18, FedAvg(), "BatchNorm2d"),
        (LogisticRegression, SneakyStrategy(), "correct_gradients"),
        (RandomInside, FedAvg(), "trial batched step failed"),
    ],
)
def test_what_cannot_batch_says_why(factory, strategy: Strategy, reason: str) -> None:
    data = images(8)
    model = make(factory, data)
    said = refusal(model=model, strategy=strategy, data=data, cfg=LocalConfig(lr=0.1, batch_size=4))
    assert said is not None and reason in said


def test_every_builtin_strategy_and_model_can_batch() -> None:
    data = images(8)
    for factory in MODELS.values():
        model = make(factory, data)
        for strategy in STRATEGIES.values():
            assert (
                refusal(model=model, strategy=strategy, data=data, cfg=LocalConfig(lr=0.1, batch_size=4))
                is None
            )
