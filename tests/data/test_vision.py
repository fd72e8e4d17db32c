"""Vision readers on tiny files written in the real formats (IDX plain and gzipped, CIFAR pickles),
and on the real Fashion-MNIST as Debian's `dataset-fashion-mnist` package installs it."""

import gzip
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

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> None:
    """An IDX (SN3) file of unsigned bytes, as distributed by LeCun; gzipped (name + .gz) if `gz`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_mnist_like(raw: Path, *, n_train: int, n_test: int, gz: bool = False) -> dict[str, np.ndarray]:
    """The four idx files of the MNIST family under `raw` (names without .gz unless `gz`)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(raw / name, array, gz=gz)
    return arrays


@pytest.mark.parametrize(
    "cls, folder, mean, std",
    [(MNIST, "MNIST", 0.1307, 0.3081), (FashionMNIST, "FashionMNIST", 0.2860, 0.3530)],
)
@pytest.mark.parametrize(
    "layout, gz", [("torchvision", False), ("torchvision", True), ("flat", True), ("flat", False)]
)
def test_mnist_like_reads_real_idx_files(
    tmp_path: Path, cls: type, folder: str, mean: float, std: float, layout: str, gz: bool
) -> None:
    # Prepare: <root>/<Class>/raw/ as torchvision keeps them, or the files in root itself (Debian)
    raw = tmp_path / folder / "raw" if layout == "torchvision" else tmp_path
    arrays = write_mnist_like(raw, n_train=20, n_test=7, gz=gz)
    before = sorted(p.name for p in raw.iterdir())
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
    assert sorted(p.name for p in raw.iterdir()) == before  # nothing decompressed or written there
    assert cls(root=str(tmp_path)).missing_files() == []


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-9]), "cannot be read"),  # truncated gzip stream
        (lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + bytes(64))), "not an unsigned-byte IDX"),
        (
            lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-5])),
            "truncated or corrupt",
        ),
    ],
)
def test_corrupt_idx_files_are_one_line_naming_the_file(tmp_path: Path, damage, message: str) -> None:
    # Prepare
    write_mnist_like(tmp_path, n_train=4, n_test=3, gz=True)
    damage(tmp_path / "train-images-idx3-ubyte.gz")
    # Execute
    with pytest.raises(DatasetFilesMissing) as err:
        FashionMNIST(root=str(tmp_path)).load(num_clients=1, seed=0)
    # Assert
    text = str(err.value)
    assert "\n" not in text and text.startswith("fashion_mnist: corrupt dataset file ")
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in text and message in text


def test_images_and_labels_of_different_lengths_are_corrupt(tmp_path: Path) -> None:
    # Prepare
    write_mnist_like(tmp_path, n_train=4, n_test=3)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2))
    # Execute / Assert
    with pytest.raises(DatasetFilesMissing, match=r"t10k images \(3, 28, 28\) do not match labels \(2,\)"):
        MNIST(root=str(tmp_path)).load(num_clients=1, seed=0)


@pytest.mark.skipif(not DEBIAN.is_dir(), reason=f"{DEBIAN} absent: apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_from_debians_gz_files_equals_torchvisions_reading(tmp_path: Path) -> None:
    # Prepare: torchvision's own reader on the same files, decompressed into its layout.
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in DEBIAN.glob("*-ubyte.gz"):
        (raw / gz.name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
    reference = torchvision.datasets.FashionMNIST(str(tmp_path), train=True)
    listing = sorted(p.name for p in DEBIAN.iterdir())
    # Execute
    data = FashionMNIST(root=str(DEBIAN)).load(num_clients=1, seed=0)
    # Assert: the published sizes, balanced classes (6,000 / 1,000 each), torchvision's exact pixels
    assert data.train.x.shape == (60000, 1, 28, 28) and data.test.x.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train.y).tolist() == [6000] * 10
    assert torch.bincount(data.test.y).tolist() == [1000] * 10
    assert torch.equal(data.train.y, reference.targets)
    pixels = torch.round((data.train.x[:, 0] * FashionMNIST.std[0] + FashionMNIST.mean[0]) * 255).to(
        torch.uint8
    )
    assert torch.equal(pixels, reference.data)
    assert abs(float(data.train.x.mean())) < 0.01 and abs(float(data.train.x.std()) - 1) < 0.01
    assert sorted(p.name for p in DEBIAN.iterdir()) == listing


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


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
def test_partial_mnist_files_are_missing_files(tmp_path: Path, layout: str) -> None:
    # Prepare: one test file is absent.
    raw = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    write_mnist_like(raw, n_train=5, n_test=5, gz=layout == "flat")
    (raw / ("t10k-images-idx3-ubyte" + (".gz" if layout == "flat" else ""))).unlink()
    # Execute / Assert: the folder holding the others and the missing name
    with pytest.raises(DatasetFilesMissing) as err:
        MNIST(root=str(tmp_path)).load(num_clients=1, seed=0)
    assert str(err.value).startswith(
        f"mnist: missing dataset files under {raw} (t10k-images-idx3-ubyte, .gz or not;"
    )
    assert MNIST(root=str(tmp_path)).missing_files() == [f"{raw}/t10k-images-idx3-ubyte[.gz]"]


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
