"""MNIST, Fashion-MNIST and CIFAR-10, held once as normalised float32 tensors.

LeCun et al. (MNIST), http://yann.lecun.com/exdb/mnist/; Xiao et al. (Fashion-MNIST),
https://arxiv.org/abs/1708.07747; Krizhevsky (CIFAR-10), https://www.cs.toronto.edu/~kriz/cifar.html.

MNIST and Fashion-MNIST are read by fedsweep/data/idx.py from `dataset.root` itself (the files as
distributed, e.g. Debian's /usr/share/datasets/fashion-mnist/*-ubyte.gz) or from torchvision's
layout `<root>/<Class>/raw/`, gzipped or not; torchvision is used only to download
(`download=true`, into its layout). CIFAR-10's python pickles are read by torchvision's own class,
which also checks their md5s. Images become normalised float32 N×C×H×W tensors and labels int64
once, so training never goes through PIL or per-sample transforms. None of these has a natural
per-client split (`natural=None`): use the iid, dirichlet, shards or another partition.

Normalisation: x = (pixel / 255 − mean) / std per channel, with each dataset's own training-set
statistics unless `mean` and `std` are set (one value per channel). Papers' code does not always use
the dataset's own: the power-of-choice authors (Cho, Wang & Joshi 2022, https://arxiv.org/abs/2010.01243)
normalise Fashion-MNIST with MNIST's (0.1307, 0.3081) (conf/experiment/repro/powd_paper.yaml).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torchvision

from fedsweep.data.base import Dataset, DatasetFilesMissing, LoadedData, Split
from fedsweep.data.idx import IdxError, find_idx_files, read_idx


class VisionDataset(Dataset):
    """Shared loader: subclasses say how to read the raw arrays, and the normalisation."""

    key: str  # the name used in messages and in conf/dataset
    mean: tuple[float, ...]  # the dataset's own statistics, per channel
    std: tuple[float, ...]
    num_classes: int = 10
    # Added after cells were keyed: left out of the cell key at these values (fedsweep/config/schema.py).
    KEY_BASELINES: ClassVar[dict[str, None]] = {"mean": None, "std": None}

    def __init__(
        self,
        *,
        root: str = "data",
        download: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.root = root
        self.download = download
        channels = len(type(self).mean)
        if mean is not None:
            self.mean = _per_channel("mean", mean, channels)
        if std is not None:
            self.std = _per_channel("std", std, channels)
            if any(s <= 0 for s in self.std):
                raise ValueError(f"dataset.std must be > 0 in every channel (got {list(std)})")

    @property
    def base(self) -> Path:
        return Path(self.root).expanduser().resolve()

    def _arrays(self, *, train: bool) -> tuple[object, object]:
        """Raw images (uint8 N×H×W or N×H×W×C) and labels of one split."""
        raise NotImplementedError

    def _to_split(self, data: object, targets: object) -> Split:
        """uint8 images → float32 N×C×H×W scaled to [0, 1] and normalised; labels → int64."""
        images = torch.as_tensor(np.asarray(data))
        if images.dim() == 3:  # MNIST-like N×H×W
            images = images.unsqueeze(1)
        else:  # CIFAR N×H×W×C
            images = images.permute(0, 3, 1, 2)
        x = images.to(torch.float32).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        x = x.sub_(mean).div_(std).contiguous()
        y = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
        return Split(x=x, y=y)

    def load(self, *, num_clients: int, seed: int) -> LoadedData:
        """Read train and test once; `num_clients` and `seed` do not matter here."""
        return LoadedData(
            train=self._to_split(*self._arrays(train=True)),
            test=self._to_split(*self._arrays(train=False)),
            num_classes=self.num_classes,
            natural=None,
        )


class IdxVisionDataset(VisionDataset):
    """MNIST-family files (IDX, plain or .gz) in `root` or in torchvision's `<root>/<Class>/raw`."""

    tv_class: type  # the torchvision class, used only to download
    FILES = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )

    def _folders(self) -> list[Path]:
        return [self.base, self.base / self.tv_class.__name__ / "raw"]

    def missing_files(self) -> list[str]:
        """Files absent from the folder that holds the others (`root` when none is there), as
        `<folder>/<name>[.gz]`; [] with download."""
        if self.download:
            return []
        found, folder = find_idx_files(self._folders(), list(self.FILES))
        return [f"{folder / name}[.gz]" for name in self.FILES if name not in found]

    def _files(self) -> dict[str, Path]:
        found, folder = find_idx_files(self._folders(), list(self.FILES))
        if len(found) < len(self.FILES) and self.download:
            self.tv_class(str(self.base), train=True, download=True)  # all four files, into <Class>/raw
            found, folder = find_idx_files(self._folders(), list(self.FILES))
        missing = [name for name in self.FILES if name not in found]
        if missing:
            what = "missing dataset files" if found else "no dataset files"
            raise DatasetFilesMissing(
                f"{self.key}: {what} under {folder} ({', '.join(missing)}, .gz or not; also looked in "
                f"{self._folders()[1]}); set dataset.root to the folder holding them or set "
                "dataset.download=true"
            )
        return found

    def _arrays(self, *, train: bool) -> tuple[object, object]:
        prefix = "train" if train else "t10k"
        files = self._files()
        try:
            images = read_idx(files[f"{prefix}-images-idx3-ubyte"])
            labels = read_idx(files[f"{prefix}-labels-idx1-ubyte"])
        except IdxError as err:
            raise DatasetFilesMissing(f"{self.key}: corrupt dataset file {err}") from None
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetFilesMissing(
                f"{self.key}: corrupt dataset files: {prefix} images {images.shape} do not match "
                f"labels {labels.shape}"
            )
        return images, labels


class MNIST(IdxVisionDataset):
    """MNIST handwritten digits, 1×28×28."""

    key = "mnist"
    tv_class = torchvision.datasets.MNIST
    mean = (0.1307,)
    std = (0.3081,)


class FashionMNIST(IdxVisionDataset):
    """Fashion-MNIST clothing images, 1×28×28."""

    key = "fashion_mnist"
    tv_class = torchvision.datasets.FashionMNIST
    mean = (0.2860,)
    std = (0.3530,)


class CIFAR10(VisionDataset):
    """CIFAR-10 colour images, 3×32×32, read (and md5-checked) by torchvision."""

    key = "cifar10"
    tv_class = torchvision.datasets.CIFAR10
    folder = "cifar-10-batches-py"
    # Per-channel statistics of the CIFAR-10 training set.
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def missing_files(self) -> list[str]:
        """The pickles torchvision's lists name, under `<root>/cifar-10-batches-py`; [] with download."""
        if self.download:
            return []
        tv = self.tv_class
        names = [name for name, _ in [*tv.train_list, *tv.test_list]] + [tv.meta["filename"]]
        folder = self.base / self.folder
        return [str(folder / name) for name in names if not (folder / name).is_file()]

    def _arrays(self, *, train: bool) -> tuple[object, object]:
        """torchvision's reader; missing or corrupt files become one DatasetFilesMissing line."""
        try:
            data = self.tv_class(str(self.base), train=train, download=self.download)
        except RuntimeError as err:
            # torchvision says "Dataset not found ..." (or "... metadata file not found") when files
            # are absent or fail their checksum; other RuntimeErrors are real failures, re-raised.
            if "not found" not in str(err):
                raise
            where = self.base / self.folder
            what = "missing or corrupt dataset files" if where.exists() else "no dataset files"
            raise DatasetFilesMissing(
                f"{self.key}: {what} under {where} (set dataset.download=true or copy the files there)"
            ) from None
        return data.data, data.targets


def _per_channel(name: str, values: Sequence[float], channels: int) -> tuple[float, ...]:
    """`values` as a tuple of one finite float per channel, or ValueError naming `dataset.<name>`."""
    out = tuple(float(v) for v in values)
    if len(out) != channels or not all(abs(v) < float("inf") for v in out):
        raise ValueError(
            f"dataset.{name} must be {channels} finite number(s), one per channel (got {list(values)})"
        )
    return out
