"""ResNet-18 (He et al. 2016, "Deep Residual Learning for Image Recognition",
https://arxiv.org/abs/1512.03385) adapted to 32×32 CIFAR images.

torchvision's ImageNet stem (7×7 stride-2 convolution, then 3×3 stride-2 max pooling) shrinks a
32×32 image to 8×8 before the first block and costs several points of accuracy; the CIFAR variant
of the paper's Section 4.2, used throughout the FL literature (e.g. SCAFFOLD, FedDyn), has a 3×3
stride-1 `conv1` and no max pooling. Everything else is torchvision's `resnet18` (its `ResNet` with
`BasicBlock` × [2, 2, 2, 2], what `resnet18(weights=None)` builds: random weights, nothing is
downloaded), so state_dict keys match torchvision's. Adaptive
average pooling accepts other image sizes too. BatchNorm's `num_batches_tracked` is an int64
buffer; `fedsweep.strategies.aggregate` averages it and rounds.
"""

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


class ResNet18(ResNet):
    """torchvision resnet18 with a CIFAR stem (3×3 stride-1 conv1, no maxpool)."""

    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"ResNet18 needs input_shape (C, H, W), got {input_shape}")
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=int(num_classes))
        self.conv1 = nn.Conv2d(int(input_shape[0]), 64, kernel_size=3, stride=1, padding=1, bias=False)
        # Same initialisation torchvision gives every other convolution of the network.
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()
