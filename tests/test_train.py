"""Local training and evaluation: determinism, learning, momentum state, clipping, partial work."""

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from fedsweep.data.base import Split
from fedsweep.models.init import build_model
from fedsweep.models.logreg import LogisticRegression
from fedsweep.models.mlp import MLP
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.train import EpochOut, LocalConfig, evaluation_hits, train_epoch
from fedsweep.weights import state_of, weights_sha256


def evaluate(*, model, data, params, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) from the sums a part of a split reports."""
    hits, loss_sum = evaluation_hits(model=model, data=data, params=params, batch_size=batch_size)
    return int(hits.sum()) / len(data), loss_sum / len(data)


Params = dict[str, torch.Tensor]


def toy_data(n: int = 256, seed: int = 0) -> Split:
    """A linearly separable two-class problem in 4 dimensions."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    return Split(x=x, y=(x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).long())


def toy_model(seed: int = 0) -> nn.Module:
    return build_model(MLP, input_shape=(4,), num_classes=2, generator_seed=seed)


def run(
    model: nn.Module,
    data: Split,
    params: Params,
    *,
    indices: torch.Tensor | None = None,
    optimizer_state: Params | None = None,
    cfg: LocalConfig | None = None,
    seed: int = 0,
    max_batches: int | None = None,
) -> EpochOut:
    return train_epoch(
        model=model,
        data=data,
        indices=torch.arange(len(data)) if indices is None else indices,
        params=params,
        optimizer_state=optimizer_state or {},
        global_params=params,
        strategy=FedAvg(),
        server_state={},
        client_state={},
        cfg=cfg or LocalConfig(lr=0.1, batch_size=32, momentum=0.9),
        generator=torch.Generator().manual_seed(seed),
        max_batches=max_batches,
    )


def assert_same(a: EpochOut, b: EpochOut) -> None:
    assert weights_sha256(a.params) == weights_sha256(b.params)
    assert weights_sha256(a.optimizer_state) == weights_sha256(b.optimizer_state)
    assert (a.loss, a.steps, a.num_samples) == (b.loss, b.steps, b.num_samples)


def test_same_inputs_bitwise_same_outputs_even_after_another_client() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    params = state_of(model)
    client_a, client_b = torch.arange(0, 128), torch.arange(128, 256)
    # Execute
    first = run(model, data, params, indices=client_a, seed=5)
    run(model, data, first.params, indices=client_b, seed=6, optimizer_state=first.optimizer_state)
    again = run(model, data, params, indices=client_a, seed=5)
    fresh_instance = run(toy_model(seed=99), data, params, indices=client_a, seed=5)
    # Assert
    assert_same(first, again)
    assert_same(first, fresh_instance)


def test_dropout_inside_the_model_is_deterministic_and_isolated() -> None:
    # Prepare
    data = toy_data()

    def with_dropout(**kw: object) -> nn.Module:
        return nn.Sequential(nn.Dropout(0.5), MLP(**kw))

    model = build_model(with_dropout, input_shape=(4,), num_classes=2, generator_seed=0)
    params = state_of(model)
    # Execute
    first = run(model, data, params, seed=1)
    torch.rand(100)
    again = run(model, data, params, seed=1)
    other = run(model, data, params, seed=2)
    # Assert
    assert_same(first, again)
    assert weights_sha256(first.params) != weights_sha256(other.params)


def test_global_rng_state_is_untouched() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    before = torch.get_rng_state()
    # Execute
    run(model, data, state_of(model))
    # Assert
    assert torch.equal(torch.get_rng_state(), before)


def test_loss_decreases_and_the_model_learns() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    params, state, losses = state_of(model), {}, []
    # Execute
    for epoch in range(5):
        out = run(model, data, params, optimizer_state=state, seed=epoch)
        params, state = out.params, out.optimizer_state
        losses.append(out.loss)
    accuracy, loss = evaluate(model=model, data=data, params=params)
    # Assert
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy > 0.9
    assert loss < losses[0]


def test_momentum_state_carried_over_matches_one_persistent_optimizer() -> None:
    # Prepare: full-batch steps, so shuffling changes nothing but summation order.
    data, model = toy_data(64), toy_model()
    cfg = LocalConfig(lr=0.1, batch_size=64, momentum=0.9)
    reference = toy_model()
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(reference(data.x), data.y).backward()
        opt.step()
    # Execute
    one = run(model, data, state_of(model), cfg=cfg)
    carried = run(model, data, one.params, optimizer_state=one.optimizer_state, cfg=cfg)
    dropped = run(model, data, one.params, cfg=cfg)
    # Assert
    assert list(one.optimizer_state) == [name for name, _ in model.named_parameters()]
    for name, value in state_of(reference).items():
        torch.testing.assert_close(carried.params[name], value, rtol=0, atol=1e-6)
    assert not torch.allclose(dropped.params["net.1.weight"], carried.params["net.1.weight"], atol=1e-4)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_local_sgd_is_torch_sgd_bitwise_and_imports_no_dynamo(momentum: float) -> None:
    """Weight decay, momentum carried into a new optimiser halfway, and a parameter without a gradient
    (left alone, decay included), against one persistent torch.optim.SGD; in a fresh process, so that
    no other test's torch._dynamo import hides one."""
    # Prepare
    script = f"""
import sys, torch
from torch import nn
from fedsweep.train import LocalConfig, LocalSGD
from fedsweep.weights import state_of, weights_sha256
torch.manual_seed(0)
model = nn.ModuleDict(dict(used=nn.Linear(5, 3), unused=nn.Linear(2, 2)))
x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
cfg = LocalConfig(lr=0.1, batch_size=16, momentum={momentum}, weight_decay=0.01)
def steps(optimizer, n):
    for _ in range(n):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model["used"](x), y).backward()
        optimizer.step()
start = state_of(model)
named = dict(model.named_parameters())
first = LocalSGD(named, cfg, {{}})
steps(first, 2)
steps(LocalSGD(named, cfg, first.momentum_state()), 2)
ours, buffers = state_of(model), first.momentum_state()
dynamo = "torch._dynamo" in sys.modules
model.load_state_dict(start)
torch_sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum={momentum}, weight_decay=0.01)
steps(torch_sgd, 4)
print(weights_sha256(ours) == weights_sha256(state_of(model)), dynamo, sorted(buffers))
"""
    # Execute
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    # Assert
    assert done.returncode == 0, done.stderr[-3000:]
    names = "['used.bias', 'used.weight']" if momentum else "[]"
    assert done.stdout.split() == ["True", "False", *names.split()], done.stdout


def test_no_momentum_means_no_optimizer_state() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    # Execute
    out = run(model, data, state_of(model), cfg=LocalConfig(lr=0.1, batch_size=32))
    # Assert
    assert out.optimizer_state == {}


def test_inputs_are_not_modified() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    first = run(model, data, state_of(model))
    params_sha, state_sha = weights_sha256(first.params), weights_sha256(first.optimizer_state)
    # Execute
    run(model, data, first.params, optimizer_state=first.optimizer_state)
    # Assert
    assert weights_sha256(first.params) == params_sha
    assert weights_sha256(first.optimizer_state) == state_sha


def test_clipping_bounds_the_update() -> None:
    # Prepare: one plain SGD step moves the weights by lr · ‖g‖, with ‖g‖ ≤ clip_norm once clipped.
    data, model = toy_data(), toy_model()
    params = state_of(model)
    clipped_cfg = LocalConfig(lr=1.0, batch_size=256, clip_norm=0.01)
    # Execute
    clipped = run(model, data, params, cfg=clipped_cfg, max_batches=1)
    free = run(model, data, params, cfg=LocalConfig(lr=1.0, batch_size=256), max_batches=1)

    def step(out: EpochOut) -> float:
        return math.sqrt(sum(float(((out.params[k] - params[k]) ** 2).sum()) for k in params))

    # Assert
    assert step(clipped) <= 0.01 * (1 + 1e-4)
    assert step(free) > 0.05


def test_max_batches_does_partial_work() -> None:
    # Prepare
    data, model = toy_data(100), toy_model()
    params = state_of(model)
    cfg = LocalConfig(lr=0.1, batch_size=32)
    # Execute
    full = run(model, data, params, cfg=cfg)
    partial = run(model, data, params, cfg=cfg, max_batches=2)
    beyond = run(model, data, params, cfg=cfg, max_batches=10)
    nothing = run(model, data, params, cfg=cfg, max_batches=0)
    # Assert
    assert (full.steps, full.num_samples) == (4, 100)
    assert (partial.steps, partial.num_samples) == (2, 64)
    assert_same(beyond, full)
    assert (nothing.steps, nothing.num_samples, nothing.loss) == (0, 0, 0.0)
    assert weights_sha256(nothing.params) == weights_sha256(params)


def test_empty_client_trains_nothing() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    params = state_of(model)
    # Execute
    out = run(model, data, params, indices=torch.zeros(0, dtype=torch.int64))
    # Assert
    assert (out.steps, out.num_samples, out.loss) == (0, 0, 0.0)
    assert weights_sha256(out.params) == weights_sha256(params)


def test_non_finite_loss_is_returned_not_raised() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    poisoned = Split(x=torch.full_like(data.x, float("nan")), y=data.y)
    # Execute
    out = run(model, poisoned, state_of(model))
    # Assert
    assert math.isnan(out.loss)


def test_evaluate_counts_correct_predictions_and_mean_loss() -> None:
    # Prepare: logits = [0, x0] with weight 1 on feature 0 of class 1, so the prediction is x0 > 0.
    model = build_model(LogisticRegression, input_shape=(2,), num_classes=2, generator_seed=0)
    params = {"linear.weight": torch.tensor([[0.0, 0.0], [1.0, 0.0]]), "linear.bias": torch.zeros(2)}
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-2.0, 0.0]])
    data = Split(x=x, y=torch.tensor([1, 1, 1, 0]))
    expected_loss = float(nn.functional.cross_entropy(torch.stack([torch.zeros(4), x[:, 0]], 1), data.y))
    # Execute
    accuracy, loss = evaluate(model=model, data=data, params=params, batch_size=3)
    # Assert
    assert accuracy == 0.75
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert not model.training


def test_evaluate_does_not_depend_on_batch_size() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    params = state_of(model)
    # Execute
    small = evaluate(model=model, data=data, params=params, batch_size=7)
    large = evaluate(model=model, data=data, params=params)
    # Assert
    assert small[0] == large[0]
    assert small[1] == pytest.approx(large[1], rel=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=0.0), dict(batch_size=0), dict(momentum=1.0), dict(weight_decay=-1.0), dict(clip_norm=-1.0)],
)
def test_bad_local_config_is_rejected(kwargs: dict[str, float]) -> None:
    # Execute / Assert
    with pytest.raises(ValueError):
        LocalConfig(**{"lr": 0.1, "batch_size": 8, **kwargs})


def test_mixed_precision_learns_repeatably_and_differs_from_float32() -> None:
    # Prepare
    data, model = toy_data(), toy_model()
    amp = LocalConfig(lr=0.1, batch_size=32, momentum=0.9, amp=True)
    params, state, losses = state_of(model), {}, []
    # Execute: bfloat16 autocast on CPU (float16 with loss scaling is the CUDA path)
    for epoch in range(5):
        out = run(model, data, params, optimizer_state=state, seed=epoch, cfg=amp)
        params, state = out.params, out.optimizer_state
        losses.append(out.loss)
    again = run(model, data, state_of(toy_model()), cfg=amp)
    first = run(model, data, state_of(toy_model()), cfg=amp)
    plain = run(model, data, state_of(toy_model()))
    accuracy, _ = evaluate(model=model, data=data, params=params)
    # Assert: it learns; float32 parameters and momentum; the same bytes twice; not the float32 run
    assert losses[-1] < 0.5 * losses[0] and accuracy > 0.9
    assert all(v.dtype == torch.float32 for v in (*params.values(), *state.values()))
    assert_same(first, again)
    assert weights_sha256(first.params) != weights_sha256(plain.params)


def test_loss_sq_is_the_mean_squared_per_sample_loss_and_leaves_training_alone() -> None:
    # Prepare: one batch holding every sample, so all losses come from the starting model
    data, model = toy_data(64), toy_model()
    params = state_of(model)
    with torch.no_grad():
        model.load_state_dict(params)
        per_sample = torch.nn.functional.cross_entropy(model(data.x), data.y, reduction="none").double()
    cfg = LocalConfig(lr=0.1, batch_size=64)
    # Execute
    out = run(model, data, params, cfg=cfg)
    # Assert: the mean of the squares (>= the squared mean), and the update is the plain SGD step's
    assert out.loss_sq == pytest.approx(float(per_sample.square().mean()), rel=1e-6)
    assert out.loss_sq >= out.loss**2
    reference = state_of(model)
    model.load_state_dict(params)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad(set_to_none=True)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    torch.nn.functional.cross_entropy(model(data.x[order]), data.y[order]).backward()
    optimizer.step()
    assert weights_sha256(out.params) == weights_sha256(state_of(model))
    assert weights_sha256(out.params) == weights_sha256(reference)
