"""The model registry: stable names -> builder functions, in the spirit of timm's `register_model`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn


class ModelError(ValueError):
    """A model that cannot be built as asked (unknown name, unsupported input); the message says the fix."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    native_img_size: int
    description: str
    builder: Callable[..., nn.Module]


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, family: str, native_img_size: int, description: str):
    """Decorator: make `fn(num_classes, in_chans, img_size) -> nn.Module` buildable as `name`."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name, family, native_img_size, description, fn)
        return fn

    return wrap


def list_models() -> list[str]:
    """Every registered model name, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The registry entry for `name`; ModelError naming the choices if there is none."""
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))} (see `tunelab models list`)"
        ) from None


def build(name: str, num_classes: int, in_chans: int = 3, img_size: int = 32, **kwargs) -> nn.Module:
    """A freshly initialised model `name` for `in_chans`x`img_size`x`img_size` inputs and `num_classes` outputs."""
    info = model_info(name)
    if num_classes < 2:
        raise ModelError(f"num_classes must be at least 2 (got {num_classes})")
    if in_chans not in (1, 3):
        raise ModelError(f"in_chans must be 1 or 3 (got {in_chans})")
    if not 16 <= img_size <= 512:
        raise ModelError(f"img_size must be between 16 and 512 pixels (got {img_size})")
    return info.builder(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _load_families() -> None:
    # Importing a family module registers its models; kept lazy so `models.registry` has no import cycle.
    from models import cnn, resnet_cifar  # noqa: F401
