"""Synthetic(α, β): the FedProx / LEAF synthetic federated dataset.

Li et al., "Federated Optimization in Heterogeneous Networks" (MLSys 2020), §5.1,
https://arxiv.org/abs/1812.06127, and its reference generator
(github.com/litian96/FedProx, data/synthetic_*/generate_synthetic.py).

Per device k, with d = 60 features and C = 10 classes:

    u_k ~ N(0, α)          B_k ~ N(0, β)
    W_k ∈ R^{d×C}, b_k ∈ R^C  ~ N(u_k, 1)       (the reference uses u_k for both)
    v_k ∈ R^d ~ N(B_k, 1)
    x ~ N(v_k, Σ),  Σ diagonal, Σ_jj = j^-1.2   (j = 1..d)
    y = argmax softmax(W_kᵀ x + b_k)  (= argmax of the logits)

α and β are used as the **standard deviation**, as in the reference code
(`np.random.normal(0, alpha, ...)` passes them as `scale`); the paper writes N(0, α).
α controls how much the local models differ, β how much the local inputs differ.

Sample counts follow the reference: `int(lognormal(4, 2)) + 50`. That tail is heavy (a device can
draw tens of thousands of samples), so `max_samples_per_device` caps it to keep memory and load
time bounded; `None` removes the cap.

Differences from the reference, both deliberate:
- every device draws from its own generator `rng.generator(seed, "synthetic", α, β, k)`, so device
  k's data does not depend on how many devices are generated (the reference uses one global stream);
- the per-device train/test split takes the first `1 - test_fraction` of the device's samples
  (they are i.i.d., so this equals the reference's shuffle-then-cut); the reference keeps 10 % for
  test, here the default is 20 %.
"""

import math

import torch

from fedsweep.data.base import Dataset, LoadedData, Split
from fedsweep.rng import generator


def feature_variances(num_features: int) -> torch.Tensor:
    """Diagonal of Σ: Σ_jj = j^-1.2 for j = 1..num_features (float64)."""
    return torch.arange(1, num_features + 1, dtype=torch.float64).pow(-1.2)


def draw_device_count(gen: torch.Generator, *, max_samples: int | None) -> int:
    """Samples on one device: int(lognormal(4, 2)) + 50, capped at `max_samples`."""
    count = int(torch.empty(1, dtype=torch.float64).log_normal_(4.0, 2.0, generator=gen).item()) + 50
    return count if max_samples is None else min(count, max_samples)


def draw_device_model(
    gen: torch.Generator, *, alpha: float, beta: float, num_features: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One device's (W_k, b_k, v_k) from the two-level Gaussian prior (float64)."""
    u = torch.randn((), dtype=torch.float64, generator=gen) * alpha
    big_b = torch.randn((), dtype=torch.float64, generator=gen) * beta
    w = u + torch.randn(num_features, num_classes, dtype=torch.float64, generator=gen)
    b = u + torch.randn(num_classes, dtype=torch.float64, generator=gen)
    v = big_b + torch.randn(num_features, dtype=torch.float64, generator=gen)
    return w, b, v


def draw_device_samples(
    gen: torch.Generator, *, w: torch.Tensor, b: torch.Tensor, v: torch.Tensor, num_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(v, Σ) and y = argmax(x W + b) for one device (float64 x, int64 y)."""
    std = feature_variances(v.shape[0]).sqrt()
    x = v + std * torch.randn(num_samples, v.shape[0], dtype=torch.float64, generator=gen)
    # softmax is monotone, so the argmax of the logits is the reference's argmax(softmax(...)).
    y = (x @ w + b).argmax(dim=1)
    return x, y


class Synthetic(Dataset):
    """LEAF/FedProx Synthetic(α, β) with one natural client per device."""

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        num_features: int = 60,
        num_classes: int = 10,
        test_fraction: float = 0.2,
        max_samples_per_device: int | None = 1000,
    ) -> None:
        if alpha < 0:
            raise ValueError(f"dataset.alpha must be >= 0, got {alpha}")
        if beta < 0:
            raise ValueError(f"dataset.beta must be >= 0, got {beta}")
        if num_features < 1:
            raise ValueError(f"dataset.num_features must be >= 1, got {num_features}")
        if num_classes < 2:
            raise ValueError(f"dataset.num_classes must be >= 2, got {num_classes}")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"dataset.test_fraction must be in [0, 1), got {test_fraction}")
        if max_samples_per_device is not None and max_samples_per_device < 2:
            raise ValueError(f"dataset.max_samples_per_device must be >= 2, got {max_samples_per_device}")
        # float() so that alpha=1 and alpha=1.0 name the same generator coordinates.
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.num_features = num_features
        self.num_classes = num_classes
        self.test_fraction = test_fraction
        self.max_samples_per_device = max_samples_per_device

    def device(self, *, seed: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All samples of device k (float64 x, int64 y); independent of the number of devices."""
        gen = generator(seed, "synthetic", self.alpha, self.beta, k)
        count = draw_device_count(gen, max_samples=self.max_samples_per_device)
        w, b, v = draw_device_model(
            gen, alpha=self.alpha, beta=self.beta,
            num_features=self.num_features, num_classes=self.num_classes,
        )  # fmt: skip
        return draw_device_samples(gen, w=w, b=b, v=v, num_samples=count)

    def load(self, *, num_clients: int, seed: int) -> LoadedData:
        """Generate `num_clients` devices; `natural[k]` indexes device k's training samples, and
        `test_owner` names the device of each test sample (a device's test samples are its own)."""
        if num_clients < 1:
            raise ValueError(f"num_clients must be >= 1, got {num_clients}")
        train_x, train_y, test_x, test_y, natural = [], [], [], [], []
        offset = 0
        for k in range(num_clients):
            x, y = self.device(seed=seed, k=k)
            # At least one training sample per device, so no natural client is empty.
            n_train = max(1, math.floor(len(y) * (1.0 - self.test_fraction)))
            train_x.append(x[:n_train])
            train_y.append(y[:n_train])
            test_x.append(x[n_train:])
            test_y.append(y[n_train:])
            natural.append(torch.arange(offset, offset + n_train, dtype=torch.int64))
            offset += n_train
        return LoadedData(
            train=Split(x=torch.cat(train_x).float(), y=torch.cat(train_y)),
            test=Split(x=torch.cat(test_x).float(), y=torch.cat(test_y)),
            num_classes=self.num_classes,
            natural=natural,
            test_owner=torch.repeat_interleave(
                torch.arange(num_clients), torch.tensor([len(y) for y in test_y])
            ),
        )
