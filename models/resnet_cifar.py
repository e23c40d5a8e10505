"""CIFAR ResNets of He et al. 2016 ("Deep Residual Learning", section 4.2): 6n+2 layers, 16/32/64 channels.

Shortcuts are option A (identity, zero-padded channels on downsampling), which is what gives the paper's
parameter counts (ResNet-20: 0.27 M).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tunelab.models.registration import register_model


class _PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.pad = extra_channels // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity() if stride == 1 and in_planes == planes else _PadShortcut(planes - in_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int, in_chans: int):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("CIFAR ResNet depth must be 6n+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each block: each block starts as identity (Goyal et al. 2017).
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _register(depth: int, params: str) -> None:
    def builder(num_classes: int, in_chans: int, img_size: int, pretrained=None) -> nn.Module:
        return CifarResNet(depth, num_classes, in_chans)

    register_model(
        f"resnet{depth}", family="resnet_cifar", native_img_size=32,
        description=f"CIFAR ResNet-{depth} (He et al. 2016), {params} params",
        reference="He et al. 2016, Deep Residual Learning, Table 6 (CIFAR-10)",
    )(builder)


for _depth, _params in ((20, "0.27 M"), (32, "0.46 M"), (56, "0.85 M"), (110, "1.7 M")):
    _register(_depth, _params)
