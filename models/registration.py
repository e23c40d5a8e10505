"""Registration: the table of model names and `register_model`, the decorator every family module uses (a leaf:
families import it, `models.registry` looks names up in it after importing the families)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch.nn as nn

from tunelab.errors import TunelabError

Pretrained = Union[None, bool, str, Path]

# Below this input size, builders adapt stems and early strides to small images; at or above it (inputs resized
# to the weights' resolution) they keep the ImageNet layout.
SMALL_INPUT = 64


class ModelError(TunelabError, ValueError):
    """A model that cannot be built as asked (unknown name, unsupported input, weights that do not fit)."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    native_img_size: int
    description: str
    builder: Callable[..., nn.Module]
    timm_name: Optional[str] = None  # the timm architecture behind it (pretrained weights come from there)
    reference: str = ""  # where the published parameter count comes from


_REGISTRY: dict[str, ModelInfo] = {}
TIMM_PREFIX = "timm/"


def register_model(name: str, family: str, native_img_size: int, description: str,
                   timm_name: Optional[str] = None, reference: str = ""):
    """Decorator: make `fn(num_classes, in_chans, img_size, pretrained) -> nn.Module` buildable as `name`."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name, family, native_img_size, description, fn, timm_name, reference)
        return fn

    return wrap
