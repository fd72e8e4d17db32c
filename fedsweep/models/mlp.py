"""A fully connected ReLU network, the usual non-convex model for Synthetic(α, β).

Synthetic data and the multi-layer setting follow Li et al. 2020, "Federated Optimization in
Heterogeneous Networks" (FedProx), https://arxiv.org/abs/1812.06127, and Shamir et al. 2014.
Outputs logits; the softmax lives in the loss.
"""

import math
from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten → [Linear → ReLU] per hidden size → Linear to num_classes."""

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        hidden: int | Sequence[int] = 64,
    ) -> None:
        super().__init__()
        # Hydra hands lists over as ListConfig; plain ints keep the module picklable and printable.
        sizes = [int(hidden)] if isinstance(hidden, int) else [int(h) for h in hidden]
        in_features = math.prod(int(d) for d in input_shape)
        if in_features <= 0 or num_classes <= 0 or any(h <= 0 for h in sizes):
            raise ValueError(f"MLP needs positive sizes, got {input_shape=}, {num_classes=}, {hidden=}")
        layers: list[nn.Module] = [nn.Flatten()]
        for size in sizes:
            layers += [nn.Linear(in_features, size), nn.ReLU()]
            in_features = size
        layers.append(nn.Linear(in_features, int(num_classes)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.net(x)
