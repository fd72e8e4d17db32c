"""A fully connected ReLU network, the usual non-convex model for Synthetic(α, β) and (Fashion-)MNIST.

Synthetic data and the multi-layer setting follow Li et al. 2020, "Federated Optimization in
Heterogeneous Networks" (FedProx), https://arxiv.org/abs/1812.06127, and Shamir et al. 2014.
Outputs logits; the softmax lives in the loss.

`dropout` (0 by default: none) adds `nn.Dropout(p)` after the last hidden layer's ReLU, as the MLP of
the power-of-choice authors' code does (Cho, Wang & Joshi 2022, https://arxiv.org/abs/2010.01243,
`MLP_FMNIST(64, 30)`: Dropout(0.5) after the second hidden layer). Dropout draws from torch's global
generator; fedsweep/train.py seeds it per client, round and epoch from the client's generator, so the
masks differ between clients and a retried or resumed task draws the same ones. Evaluation and
power-of-choice's probes run the model in eval mode: no dropout there.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten → [Linear → ReLU] per hidden size (→ Dropout) → Linear to num_classes."""

    # Added after cells were keyed: left out of the cell key at this value (fedsweep/config/schema.py).
    KEY_BASELINES: ClassVar[dict[str, float]] = {"dropout": 0.0}

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        hidden: int | Sequence[int] = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        # Hydra hands lists over as ListConfig; plain ints keep the module picklable and printable.
        sizes = [int(hidden)] if isinstance(hidden, int) else [int(h) for h in hidden]
        in_features = math.prod(int(d) for d in input_shape)
        if in_features <= 0 or num_classes <= 0 or any(h <= 0 for h in sizes):
            raise ValueError(f"MLP needs positive sizes, got {input_shape=}, {num_classes=}, {hidden=}")
        check_dropout(dropout, hidden=sizes)
        layers: list[nn.Module] = [nn.Flatten()]
        for size in sizes:
            layers += [nn.Linear(in_features, size), nn.ReLU()]
            in_features = size
        if (
            dropout > 0.0
        ):  # only when set: the layer indices (state_dict keys) of other MLPs stay as they were
            layers.append(nn.Dropout(float(dropout)))
        layers.append(nn.Linear(in_features, int(num_classes)))
        self.net = nn.Sequential(*layers)

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """The dropout rule before anything runs (the node is a partial: the constructor runs later)."""
        node = config[key]
        hidden = node.get("hidden", 64)
        check_dropout(
            node.get("dropout", 0.0), hidden=[hidden] if isinstance(hidden, int) else hidden, key=key
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.net(x)


def check_dropout(dropout: Any, *, hidden: Sequence[int], key: str = "model") -> None:
    """ValueError naming `<key>.dropout` unless it is in [0, 1), with a hidden layer to follow."""
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"{key}.dropout must be in [0, 1) (got {dropout!r})")
    if dropout > 0.0 and not list(hidden):
        raise ValueError(f"{key}.dropout needs a hidden layer (hidden is empty)")
