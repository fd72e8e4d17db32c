"""The CNN of McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
Decentralized Data" (FedAvg), https://arxiv.org/abs/1602.05629, Section 3.

Two 5×5 convolutions (32 and 64 channels), each followed by ReLU and 2×2 max pooling, a fully
connected ReLU layer of 512 units and a linear output layer; the softmax lives in the loss, so the
model returns logits. The paper does not state the padding; "same" padding (2 for a 5×5 kernel) on
1×28×28 inputs gives exactly the paper's total of 1,663,370 parameters, hence the default.

The smaller benchmark variant conv(1→16,5)-pool-conv(16→32,5)-pool-fc(512→128)-fc(128→10) is
`CNN(channels=(16, 32), hidden=128, padding=0)` (28→24→12→8→4, so 32·4·4 = 512 features).
"""

from collections.abc import Sequence

import torch
from torch import nn


class CNN(nn.Module):
    """conv-ReLU-pool ×2 → fc-ReLU → fc; sizes configurable, flatten size found by a dry run."""

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden: int = 512,
        padding: int = 2,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        shape = tuple(int(d) for d in input_shape)
        # Image datasets may store samples flattened (LEAF's FEMNIST) or without a channel axis.
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise ValueError(f"CNN needs input_shape (C, H, W) or (H, W), got {input_shape}")
        self.input_shape = shape
        layers: list[nn.Module] = []
        in_ch = shape[0]
        for out_ch in (int(c) for c in channels):
            conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=int(padding))
            layers += [conv, nn.ReLU(), nn.MaxPool2d(2)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        try:
            with torch.no_grad():
                flat = self.features(torch.zeros(1, *shape)).numel()
        except RuntimeError as err:  # a kernel larger than what is left of the image
            raise ValueError(f"CNN: input {shape} is too small for its conv+pool stages ({err})") from None
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, int(hidden)), nn.ReLU(), nn.Linear(int(hidden), int(num_classes))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.classifier(self.features(x.reshape(x.shape[0], *self.input_shape)))
