"""Models: output shapes, parameter counts from the papers, the CIFAR ResNet stem."""

import pytest
import torch
from torch import nn

from fedsweep.models.cnn import CNN
from fedsweep.models.logreg import LogisticRegression
from fedsweep.models.mlp import MLP
from fedsweep.models.resnet import ResNet18


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("model", "input_shape"),
    [
        (LogisticRegression(input_shape=(60,), num_classes=10), (60,)),
        (LogisticRegression(input_shape=(1, 28, 28), num_classes=10), (1, 28, 28)),
        (MLP(input_shape=(60,), num_classes=10), (60,)),
        (MLP(input_shape=(60,), num_classes=10, hidden=[32, 16]), (60,)),
        (CNN(input_shape=(1, 28, 28), num_classes=10), (1, 28, 28)),
        (CNN(input_shape=(3, 32, 32), num_classes=10, channels=(16, 32), hidden=128, padding=0), (3, 32, 32)),
    ],
)
def test_forward_gives_logits_per_class(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    # Prepare
    x = torch.zeros(5, *input_shape)
    # Execute
    out = model(x)
    # Assert
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32


def test_mcmahan_cnn_has_the_papers_parameter_count() -> None:
    # Prepare: McMahan et al. 2017 state 1,663,370 parameters; "same" padding reproduces it.
    expected = (1 * 32 * 25 + 32) + (32 * 64 * 25 + 64) + (64 * 7 * 7 * 512 + 512) + (512 * 10 + 10)
    # Execute
    model = CNN(input_shape=(1, 28, 28), num_classes=10)
    # Assert
    assert expected == 1_663_370
    assert num_params(model) == expected


def test_benchmark_cnn_has_exact_parameter_count() -> None:
    # Prepare: conv(1→16,5)-pool-conv(16→32,5)-pool-fc(512→128)-fc(128→10)
    expected = 1 * 16 * 25 + 16 + 16 * 32 * 25 + 32 + 512 * 128 + 128 + 128 * 10 + 10
    # Execute
    model = CNN(input_shape=(1, 28, 28), num_classes=10, channels=(16, 32), hidden=128, padding=0)
    # Assert
    assert num_params(model) == expected == 80_202
    assert model.classifier[1].in_features == 32 * 4 * 4


def test_cnn_accepts_flattened_and_channelless_images() -> None:
    # Prepare
    model = CNN(input_shape=(28, 28), num_classes=62, channels=(4, 8), hidden=16)
    # Execute
    flat = model(torch.randn(3, 784, generator=torch.Generator().manual_seed(0)))
    # Assert
    assert flat.shape == (3, 62)
    assert model.input_shape == (1, 28, 28)


def test_cnn_rejects_an_input_too_small_for_its_layers() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="too small"):
        CNN(input_shape=(1, 6, 6), num_classes=10, padding=0)


def test_mlp_layers_follow_hidden_sizes() -> None:
    # Execute
    model = MLP(input_shape=(60,), num_classes=10, hidden=[32, 16])
    # Assert
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(60, 32), (32, 16), (16, 10)]


def test_resnet18_has_cifar_stem_and_runs_on_32x32() -> None:
    # Prepare
    model = ResNet18(input_shape=(3, 32, 32), num_classes=10)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    # Execute
    out = model(x)
    # Assert
    assert out.shape == (2, 10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.state_dict()["bn1.num_batches_tracked"].dtype == torch.int64
