"""MNIST, Fashion-MNIST and CIFAR-10 read through torchvision's own dataset classes.

LeCun et al. (MNIST), http://yann.lecun.com/exdb/mnist/; Xiao et al. (Fashion-MNIST),
https://arxiv.org/abs/1708.07747; Krizhevsky (CIFAR-10), https://www.cs.toronto.edu/~kriz/cifar.html.

torchvision does the file reading (and, only with `download=True`, the downloading and checksum
checks); this module converts its arrays once into normalised float32 tensors (N×C×H×W) and int64
labels, so training never goes through PIL or per-sample transforms. None of these has a natural
per-client split (`natural=None`): use the iid, dirichlet or shards partition.
"""

from pathlib import Path

import numpy as np
import torch
import torchvision

from fedsweep.data.base import Dataset, DatasetFilesMissing, LoadedData, Split


class VisionDataset(Dataset):
    """Shared loader: subclasses name the torchvision class, its folder and the normalisation."""

    key: str  # the name used in messages and in conf/dataset
    tv_class: type  # the torchvision dataset class
    folder: str  # where the tv_class expects its files, relative to root
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int = 10

    def __init__(self, *, root: str = "data", download: bool = False) -> None:
        self.root = root
        self.download = download

    def _read(self, *, train: bool) -> object:
        """The torchvision dataset object; missing files become one DatasetFilesMissing line."""
        root = Path(self.root).expanduser().resolve()
        try:
            return self.tv_class(str(root), train=train, download=self.download)
        except RuntimeError as err:
            # torchvision says "Dataset not found ..." (or "... metadata file not found") when files
            # are absent or fail their checksum; other RuntimeErrors are real failures, re-raised.
            if "not found" not in str(err):
                raise
            where = root / self.folder
            what = "missing or corrupt dataset files" if where.exists() else "no dataset files"
            raise DatasetFilesMissing(
                f"{self.key}: {what} under {where} (set dataset.download=true or copy the files there)"
            ) from None

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
        train = self._read(train=True)
        test = self._read(train=False)
        return LoadedData(
            train=self._to_split(train.data, train.targets),
            test=self._to_split(test.data, test.targets),
            num_classes=self.num_classes,
            natural=None,
        )


class MNIST(VisionDataset):
    """MNIST handwritten digits, 1×28×28."""

    key = "mnist"
    tv_class = torchvision.datasets.MNIST
    folder = "MNIST/raw"
    mean = (0.1307,)
    std = (0.3081,)


class FashionMNIST(VisionDataset):
    """Fashion-MNIST clothing images, 1×28×28."""

    key = "fashion_mnist"
    tv_class = torchvision.datasets.FashionMNIST
    folder = "FashionMNIST/raw"
    mean = (0.2860,)
    std = (0.3530,)


class CIFAR10(VisionDataset):
    """CIFAR-10 colour images, 3×32×32."""

    key = "cifar10"
    tv_class = torchvision.datasets.CIFAR10
    folder = "cifar-10-batches-py"
    # Per-channel statistics of the CIFAR-10 training set.
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
