"""Every conf/model/*.yaml instantiates into a partial that builds a working model."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fedsweep.models.init import build_model

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"
SHAPES = {"resnet18": (3, 32, 32)}


def test_expected_model_options_exist() -> None:
    # Assert
    assert {p.stem for p in CONF.glob("*.yaml")} >= {"logreg", "mlp", "cnn", "cnn_small", "resnet18"}


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_model_yaml_instantiates(path: Path) -> None:
    # Prepare
    factory = instantiate(OmegaConf.load(path))
    shape = SHAPES.get(path.stem, (1, 28, 28))
    # Execute
    model = build_model(factory, input_shape=shape, num_classes=10, generator_seed=0)
    # Assert
    assert isinstance(model, torch.nn.Module)
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
