"""Small convolutional baselines."""

from __future__ import annotations

import torch.nn as nn

from models.registry import register_model


def _conv_out(size: int, kernel: int = 3) -> int:
    return size - kernel + 1


@register_model("cnn", family="cnn", native_img_size=28, description="classic basic CNN: 2 conv + 2 dense (Keras MNIST example)")
def cnn(num_classes: int, in_chans: int, img_size: int) -> nn.Module:
    """Conv 32 3x3 - max-pool - Conv 64 3x3 - max-pool - Dense 256 - Dropout 0.5 - Dense classes."""
    side = _conv_out(_conv_out(img_size) // 2) // 2
    return nn.Sequential(
        nn.Conv2d(in_chans, 32, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(256, num_classes),
    )
