"""Blobs: a fixed pool of labelled Gaussian clusters, the same whatever the number of clients.

An isotropic Gaussian mixture, as scikit-learn's `make_blobs` draws it
(https://scikit-learn.org/stable/modules/generated/sklearn.datasets.make_blobs.html): each class c
has a centre μ_c, drawn uniformly from [−`spread`, `spread`]^d, and a sample of class c is
x = μ_c + ε with ε ~ N(0, I_d); labels are uniform over the classes. Linearly separable up to the
clusters' overlap, so a logistic regression learns it.

It exists for scale: the pool has `train_samples` samples whatever `num_clients` is, and a partition
(iid, lognormal, powerlaw, ...) makes the clients index sets over it, so a million clients cost
their indices and not a million datasets (benchmarks/million_clients.py). Everything is drawn from
generators seeded by (seed, "blobs", part), in one vectorised draw per part; d = 8 features take
32 bytes a sample (2,000,000 samples: 64 MB). There is no natural split: `natural` is None.
"""

import torch

from fedsweep.data.base import Dataset, LoadedData, Split
from fedsweep.rng import generator


class Blobs(Dataset):
    """`train_samples` + `test_samples` points of `num_classes` Gaussian clusters in `num_features`
    dimensions."""

    def __init__(
        self,
        *,
        train_samples: int = 100_000,
        test_samples: int = 10_000,
        num_features: int = 8,
        num_classes: int = 10,
        spread: float = 2.0,
    ) -> None:
        for name, value, low in (
            ("train_samples", train_samples, 1),
            ("test_samples", test_samples, 1),
            ("num_features", num_features, 1),
            ("num_classes", num_classes, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"dataset.{name} must be an integer >= {low}, got {value!r}")
        if not spread > 0:
            raise ValueError(f"dataset.spread must be > 0, got {spread!r}")
        self.train_samples, self.test_samples = train_samples, test_samples
        self.num_features, self.num_classes, self.spread = num_features, num_classes, float(spread)

    def centres(self, seed: int) -> torch.Tensor:
        """float32 [num_classes, num_features]: μ_c uniform in [−spread, spread]^d."""
        u = torch.rand(self.num_classes, self.num_features, generator=generator(seed, "blobs", "centres"))
        return (2 * u - 1) * self.spread

    def draw(self, seed: int, part: str, n: int) -> Split:
        """n samples of the mixture, from generator(seed, "blobs", part)."""
        g = generator(seed, "blobs", part)
        y = torch.randint(0, self.num_classes, (n,), generator=g)
        x = self.centres(seed)[y] + torch.randn(n, self.num_features, generator=g)
        return Split(x=x, y=y)

    def load(self, *, num_clients: int, seed: int) -> LoadedData:
        """The train and test pools; `num_clients` does not change them."""
        return LoadedData(
            train=self.draw(seed, "train", self.train_samples),
            test=self.draw(seed, "test", self.test_samples),
            num_classes=self.num_classes,
        )

    def __repr__(self) -> str:
        return (
            f"Blobs(train_samples={self.train_samples}, test_samples={self.test_samples}, "
            f"num_features={self.num_features}, num_classes={self.num_classes}, spread={self.spread})"
        )
