"""Vision readers on tiny files written in the real formats, read by torchvision's own classes."""

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from fedsweep.data.base import DatasetFilesMissing
from fedsweep.data.vision import CIFAR10, MNIST, FashionMNIST


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX (SN3) file of unsigned bytes, as distributed by LeCun."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_like(raw: Path, *, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """The four idx files torchvision's MNIST checks for (names without .gz) under `raw`."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


@pytest.mark.parametrize(
    "cls, folder, mean, std",
    [(MNIST, "MNIST", 0.1307, 0.3081), (FashionMNIST, "FashionMNIST", 0.2860, 0.3530)],
)
def test_mnist_like_reads_real_idx_files(
    tmp_path: Path, cls: type, folder: str, mean: float, std: float
) -> None:
    # Prepare
    arrays = write_mnist_like(tmp_path / folder / "raw", n_train=20, n_test=7)
    # Execute
    data = cls(root=str(tmp_path)).load(num_clients=3, seed=0)
    # Assert
    assert data.train.x.shape == (20, 1, 28, 28) and data.test.x.shape == (7, 1, 28, 28)
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64
    expected = (torch.tensor(arrays["train-images-idx3-ubyte"], dtype=torch.float32) / 255 - mean) / std
    assert torch.allclose(data.train.x[:, 0], expected, atol=1e-5)
    assert data.train.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test.y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.num_classes == 10 and data.natural is None


def write_cifar(folder: Path, *, per_batch: int) -> dict[str, str]:
    """CIFAR-10 python pickles (5 train batches, test batch, meta); returns their md5s."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        batch = {
            "batch_label": name,
            "data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            "labels": [(i + j) % 10 for j in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_cifar10_reads_real_pickle_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: the real class checks md5s of the real files; point them at the tiny files' md5s.
    md5 = write_cifar(tmp_path / "cifar-10-batches-py", per_batch=4)
    tv = torchvision.datasets.CIFAR10
    monkeypatch.setattr(tv, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tv, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(tv, "meta", {**tv.meta, "md5": md5["batches.meta"]})
    first = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    # Execute
    data = CIFAR10(root=str(tmp_path)).load(num_clients=2, seed=0)
    # Assert
    assert data.train.x.shape == (20, 3, 32, 32) and data.test.x.shape == (4, 3, 32, 32)
    assert data.train.x.is_contiguous() and data.train.y.dtype == torch.int64
    raw = torch.tensor(first["data"][0], dtype=torch.float32).view(3, 32, 32) / 255
    mean = torch.tensor(CIFAR10.mean).view(3, 1, 1)
    std = torch.tensor(CIFAR10.std).view(3, 1, 1)
    assert torch.allclose(data.train.x[0], (raw - mean) / std, atol=1e-5)
    assert data.train.y[:4].tolist() == first["labels"]
    assert data.test.y.tolist() == [(5 + j) % 10 for j in range(4)]


@pytest.mark.parametrize(
    "cls, key, folder",
    [
        (MNIST, "mnist", "MNIST/raw"),
        (FashionMNIST, "fashion_mnist", "FashionMNIST/raw"),
        (CIFAR10, "cifar10", "cifar-10-batches-py"),
    ],
)
def test_missing_files_raise_one_line_naming_the_path(
    tmp_path: Path, cls: type, key: str, folder: str
) -> None:
    # Prepare
    root = tmp_path / "nothing-here"
    # Execute
    with pytest.raises(DatasetFilesMissing) as err:
        cls(root=str(root), download=False).load(num_clients=2, seed=0)
    # Assert
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{key}: ") and str(root.resolve() / folder) in message
    assert "dataset.download=true" in message
    assert not root.exists()  # nothing written when download is false


def test_partial_mnist_files_are_missing_files(tmp_path: Path) -> None:
    # Prepare: only the training files exist.
    write_mnist_like(tmp_path / "MNIST" / "raw", n_train=5, n_test=5)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").unlink()
    # Execute / Assert
    with pytest.raises(
        DatasetFilesMissing, match="mnist: missing or corrupt dataset files under .*MNIST/raw"
    ):
        MNIST(root=str(tmp_path)).load(num_clients=1, seed=0)


def test_constructing_touches_no_files(tmp_path: Path) -> None:
    # Execute
    MNIST(root=str(tmp_path / "absent"))
    # Assert
    assert not (tmp_path / "absent").exists()


def test_cifar10_files_failing_their_checksum_are_reported_as_corrupt(tmp_path: Path) -> None:
    # Prepare: tiny files do not match the real CIFAR-10 md5s that torchvision checks.
    write_cifar(tmp_path / "cifar-10-batches-py", per_batch=2)
    # Execute / Assert
    with pytest.raises(DatasetFilesMissing, match="cifar10: missing or corrupt dataset files under"):
        CIFAR10(root=str(tmp_path)).load(num_clients=1, seed=0)
