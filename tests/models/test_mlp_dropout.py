"""The MLP's dropout option (the power-of-choice authors' MLP_FMNIST): where the layer sits, its
bounds, and its masks drawn per client and reproducible by coordinates (fedsweep/train.py)."""

import functools

import pytest
import torch
from torch import nn

from fedsweep.config.errors import ConfigError
from fedsweep.config.plugins import check_plugin
from fedsweep.data.base import Split
from fedsweep.models.init import build_model
from fedsweep.models.mlp import MLP
from fedsweep.rng import generator
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.train import LocalConfig, evaluation_hits, train_epoch
from fedsweep.weights import state_of, weights_sha256


def authors_mlp(dropout: float = 0.5) -> nn.Module:
    factory = functools.partial(MLP, hidden=[64, 30], dropout=dropout)
    return build_model(factory, input_shape=(1, 28, 28), num_classes=10, generator_seed=3)


def test_dropout_follows_the_last_hidden_layer_and_only_when_set() -> None:
    # Execute
    with_dropout = authors_mlp(0.5)
    without = authors_mlp(0.0)
    # Assert: Linear-ReLU-Linear-ReLU-Dropout(0.5)-Linear, as MLP_FMNIST(64, 30); the same initial weights
    kinds = [type(m).__name__ for m in with_dropout.net]
    assert kinds == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear"]
    assert with_dropout.net[5].p == 0.5
    assert "Dropout" not in [type(m).__name__ for m in without.net]
    assert list(without.state_dict()) == [
        "net.1.weight",
        "net.1.bias",
        "net.3.weight",
        "net.3.bias",
        "net.5.weight",
        "net.5.bias",
    ]  # keys of existing MLPs unchanged
    for a, b in zip(with_dropout.parameters(), without.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"dropout": 1.0}, "model.dropout must be in [0, 1) (got 1.0)"),
        ({"dropout": -0.1}, "model.dropout must be in [0, 1) (got -0.1)"),
        ({"dropout": 0.5, "hidden": []}, "model.dropout needs a hidden layer"),
    ],
)
def test_a_bad_dropout_is_one_line_naming_the_key(node: dict, message: str) -> None:
    # Prepare: the node is a partial, so the class's check_config says it before anything runs
    config = {"model": {"_target_": "fedsweep.models.mlp.MLP", "_partial_": True, **node}}
    # Execute
    with pytest.raises(ConfigError) as err:
        check_plugin(config, "model")
    # Assert
    assert message in str(err.value) and "\n" not in str(err.value)


def epoch(model: nn.Module, params: dict, *, client: int) -> dict[str, torch.Tensor]:
    """One epoch of `client` on 64 copies of one sample: the shuffle cannot matter, only the masks."""
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)).expand(64, 1, 28, 28)
    data = Split(x=x.contiguous(), y=torch.full((64,), 3, dtype=torch.int64))
    out = train_epoch(
        model=model,
        data=data,
        indices=torch.arange(64),
        params=params,
        optimizer_state={},
        global_params=params,
        strategy=FedAvg(),
        server_state={},
        client_state={},
        cfg=LocalConfig(lr=0.1, batch_size=16),
        generator=generator(0, "train", 1, client, 0),  # the runner's coordinates: seed, round, client, epoch
    )
    return out.params


def test_dropout_masks_differ_per_client_and_repeat_by_coordinates() -> None:
    # Prepare
    model, plain = authors_mlp(0.5), authors_mlp(0.0)
    start, plain_start = state_of(model), state_of(plain)
    torch.manual_seed(123)  # global state the masks must not depend on
    # Execute
    first = epoch(model, start, client=1)
    torch.manual_seed(456)
    again = epoch(authors_mlp(0.5), start, client=1)
    other = epoch(model, start, client=2)
    plain_1, plain_2 = epoch(plain, plain_start, client=1), epoch(plain, plain_start, client=2)
    # Assert: without dropout both clients compute the same bytes; with it, their masks differ
    assert weights_sha256(plain_1) == weights_sha256(plain_2)
    assert weights_sha256(first) != weights_sha256(other)
    assert weights_sha256(first) == weights_sha256(again)  # the same coordinates, the same masks
    assert torch.initial_seed() == 456  # the caller's global generator is left as it was


def test_evaluation_runs_without_dropout() -> None:
    # Prepare
    model = authors_mlp(0.5)
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    data = Split(x=x, y=torch.zeros(32, dtype=torch.int64))
    # Execute: twice, in whatever global RNG state
    torch.manual_seed(1)
    hits_a, loss_a = evaluation_hits(model=model, data=data, params=state_of(model))
    torch.manual_seed(2)
    hits_b, loss_b = evaluation_hits(model=model, data=data, params=state_of(model))
    # Assert: deterministic, so no mask was drawn
    assert torch.equal(hits_a, hits_b) and loss_a == loss_b
