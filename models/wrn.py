"""Wide ResNets of Zagoruyko & Komodakis 2016 ("Wide Residual Networks"): WRN-d-k, pre-activation blocks,
widths 16k/32k/64k, (d-4)/6 blocks per stage."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tunelab.models.registration import register_model


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if stride == 1 and in_planes == planes else nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x), inplace=False)
        shortcut = x if self.shortcut is None else self.shortcut(o)
        y = self.conv1(o)
        y = F.relu(self.bn2(y), inplace=True)
        if self.dropout:
            y = F.dropout(y, self.dropout, self.training)
        return self.conv2(y) + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int, in_chans: int, dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n+4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        blocks, in_planes = [], widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2)):
            for i in range(n):
                blocks.append(WideBlock(in_planes, planes, stride if i == 0 else 1, dropout))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv1(x))
        x = F.relu(self.bn(x), inplace=True)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


_REF = "Zagoruyko & Komodakis 2016, Wide Residual Networks, Table 1 / 4 (CIFAR)"


@register_model("wrn16_4", family="wrn", native_img_size=32, description="WRN-16-4, 2.7 M params", reference=_REF)
def wrn16_4(num_classes: int, in_chans: int, img_size: int, pretrained=None) -> nn.Module:
    return WideResNet(16, 4, num_classes, in_chans)


@register_model("wrn28_10", family="wrn", native_img_size=32, description="WRN-28-10, 36.5 M params", reference=_REF)
def wrn28_10(num_classes: int, in_chans: int, img_size: int, pretrained=None) -> nn.Module:
    return WideResNet(28, 10, num_classes, in_chans)
