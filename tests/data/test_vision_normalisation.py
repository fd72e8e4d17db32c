"""Normalisation constants as an option of the vision datasets (the power-of-choice authors
normalise Fashion-MNIST with MNIST's mean and std): applied when set, validated, the default kept."""

from pathlib import Path

import pytest
import torch
from test_vision import write_mnist_like

from fedsweep.data.vision import CIFAR10, FashionMNIST


def test_set_constants_are_applied_and_the_default_is_the_datasets_own(tmp_path: Path) -> None:
    # Prepare
    arrays = write_mnist_like(tmp_path, n_train=10, n_test=4, gz=True)
    pixels = torch.tensor(arrays["train-images-idx3-ubyte"], dtype=torch.float32) / 255
    # Execute
    own = FashionMNIST(root=str(tmp_path)).load(num_clients=1, seed=0)
    mnists = FashionMNIST(root=str(tmp_path), mean=[0.1307], std=[0.3081]).load(num_clients=1, seed=0)
    # Assert: (x − 0.1307) / 0.3081 with MNIST's statistics; (x − 0.2860) / 0.3530 by default
    assert torch.allclose(mnists.train.x[:, 0], (pixels - 0.1307) / 0.3081, atol=1e-6)
    assert torch.allclose(own.train.x[:, 0], (pixels - 0.2860) / 0.3530, atol=1e-6)
    assert FashionMNIST.mean == (0.2860,)  # the class keeps its own statistics for everyone else


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (FashionMNIST, {"mean": [0.1, 0.2]}, "dataset.mean must be 1 finite number(s), one per channel"),
        (FashionMNIST, {"std": [0.0]}, "dataset.std must be > 0 in every channel"),
        (CIFAR10, {"mean": [0.5]}, "dataset.mean must be 3 finite number(s), one per channel"),
        (CIFAR10, {"std": [0.2, float("inf"), 0.2]}, "dataset.std must be 3 finite number(s)"),
    ],
)
def test_bad_constants_name_the_key(cls: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        cls(root="unused", **kwargs)
    assert message in str(err.value)
