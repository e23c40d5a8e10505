"""Small convolutional baselines."""

from __future__ import annotations

import torch.nn as nn

from tunelab.models.registration import register_model


def _conv_out(size: int, kernel: int = 3) -> int:
    return size - kernel + 1


@register_model("cnn", family="cnn", native_img_size=28, description="classic basic CNN: 2 conv + 2 dense (Keras MNIST example)")
def cnn(num_classes: int, in_chans: int, img_size: int, pretrained=None) -> nn.Module:
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


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("cnn_bn", family="cnn", native_img_size=32,
                description="small VGG-style CNN with batch norm: 3 stages of 2 conv (32/64/128), global pool")
def cnn_bn(num_classes: int, in_chans: int, img_size: int, pretrained=None) -> nn.Module:
    """(conv-BN-ReLU x2, max-pool) at 32 and 64 channels, conv-BN-ReLU x2 at 128, global average pool, dense."""
    return nn.Sequential(
        *_conv_bn(in_chans, 32), *_conv_bn(32, 32), nn.MaxPool2d(2),
        *_conv_bn(32, 64), *_conv_bn(64, 64), nn.MaxPool2d(2),
        *_conv_bn(64, 128), *_conv_bn(128, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, num_classes),
    )


def _stage(cin: int, cout: int) -> list[nn.Module]:
    # Pool before BN and ReLU: they then touch a quarter of the activations. ReLU commutes with max-pooling and
    # BN is monotone per channel for a positive scale, so this is the conv-BN-ReLU-pool stage at a lower cost.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("cnn_fast", family="cnn", native_img_size=28,
                description="narrow 3-stage conv-BN net (16/32/64), space-to-depth stem: MNIST's default recipe, "
                            "99 % in seconds on a CPU")
def cnn_fast(num_classes: int, in_chans: int, img_size: int, pretrained=None, widths=(16, 32, 64)) -> nn.Module:
    """Space-to-depth stem (each 2x2 block of pixels becomes 4 channels) - conv 3x3 - BN - ReLU at 16 channels,
    then (conv 3x3 - max-pool - BN - ReLU) at 32 and 64, global max pool, dense.

    The stem replaces a full-resolution conv followed by a 2x2 max-pool: the same 14x14 output for a quarter of
    the convolution positions and no pooling pass. On the 2-core CPU that is 1.3x the training images/s, and the
    MNIST recipe reached 99.1-99.2 % (benchmarks/RESULTS.md "mnist-speed"). Odd input sizes keep the conv-pool stem.
    """
    layers: list[nn.Module] = []
    if img_size % 2 == 0:
        layers += [nn.PixelUnshuffle(2), *_conv_bn(4 * in_chans, widths[0])]
    else:
        layers += _stage(in_chans, widths[0])
    cin = widths[0]
    for w in widths[1:]:
        layers += _stage(cin, w)
        cin = w
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


@register_model("cnn_fast_wide", family="cnn", native_img_size=28,
                description="cnn_fast at twice the width (32/64/128): MNIST's accuracy recipe (mnist_best), ~99.6 % "
                            "in minutes on a CPU")
def cnn_fast_wide(num_classes: int, in_chans: int, img_size: int, pretrained=None) -> nn.Module:
    """`cnn_fast` with 32/64/128 channels: about 4x its compute, for sweeps that chase the last tenths of a point."""
    return cnn_fast(num_classes, in_chans, img_size, widths=(32, 64, 128))
