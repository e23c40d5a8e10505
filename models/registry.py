"""The model registry: stable names -> builder functions, in the spirit of timm's `register_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch.nn as nn

from tunelab.models.registration import _REGISTRY, TIMM_PREFIX, ModelError, ModelInfo, Pretrained


def list_models() -> list[str]:
    """Every registered model name, sorted (any timm model is also buildable as `timm/<name>`)."""
    _load_families()
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The registry entry for `name` (or a `timm/<name>` passthrough); ModelError naming the choices otherwise."""
    _load_families()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(TIMM_PREFIX):
        from tunelab.models.timm_models import timm_passthrough

        return timm_passthrough(name[len(TIMM_PREFIX):])
    raise ModelError(
        f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}, or timm/<name> "
        f"(see `tunelab models list`)"
    )


def build(name: str, num_classes: int, in_chans: int = 3, img_size: int = 32, pretrained: Pretrained = None,
          **kwargs) -> nn.Module:
    """A model `name` for `in_chans`x`img_size`x`img_size` inputs and `num_classes` outputs.

    `pretrained`: None/False (random init), True (ImageNet weights from the model hub or its local cache), or
    a weights file. The classifier is always new; 1-channel inputs reuse RGB weights. Below 64 px the stem is
    adapted to small images; at the weights' resolution (e.g. 224) the ImageNet layout is kept.
    """
    info = model_info(name)
    if num_classes < 2:
        raise ModelError(f"num_classes must be at least 2 (got {num_classes})")
    if in_chans not in (1, 3):
        raise ModelError(f"in_chans must be 1 or 3 (got {in_chans})")
    if not 16 <= img_size <= 512:
        raise ModelError(f"img_size must be between 16 and 512 pixels (got {img_size})")
    if pretrained is False or pretrained in ("", "false", "False", "none"):
        pretrained = None
    if pretrained in ("true", "True"):
        pretrained = True
    if pretrained is not None and info.timm_name is None:
        raise ModelError(f"{name} has no ImageNet weights (family {info.family}); pretrained transfer needs a timm "
                         f"family such as resnet18, efficientnet_b0, tf_efficientnet_lite0 or vit_tiny")
    if isinstance(pretrained, (str, Path)) and not Path(pretrained).is_file():
        raise ModelError(f"weights file {pretrained} does not exist; pass a path to a state dict (.pth/.safetensors)")
    return info.builder(num_classes=num_classes, in_chans=in_chans, img_size=img_size, pretrained=pretrained, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_models(num_classes: int, in_chans: int, img_size: int) -> list[dict]:
    """Every registered model as a record: name, family, trainable parameters for these inputs and classes, native
    input size, where its ImageNet weights come from ("none" without), timm name, description. Counting builds each
    model on the meta device: shapes only, no memory."""
    import torch

    from tunelab.models.timm_models import weights_source

    recs = []
    for name in list_models():
        info = model_info(name)
        with torch.device("meta"):
            m = build(name, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
        recs.append({"name": name, "family": info.family, "params": count_parameters(m),
                     "native_img_size": info.native_img_size,
                     "pretrained": weights_source(info.timm_name) if info.timm_name else "none",
                     "timm_name": info.timm_name, "description": info.description})
    return recs


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The classifier's parameters (timm's `get_classifier()`, else the last Linear layer)."""
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        return list(head.parameters()) if isinstance(head, nn.Module) else []
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return list(linears[-1].parameters()) if linears else []


def input_normalization(model: nn.Module, in_chans: int) -> Optional[tuple[tuple[float, ...], tuple[float, ...]]]:
    """(mean, std) that the model's ImageNet weights expect, per input channel; None for families without weights."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if "mean" not in cfg or "std" not in cfg:
        return None
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if in_chans == 1:  # grey inputs through summed RGB filters: the channel average is what they saw
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    return mean, std


def _load_families() -> None:
    # Importing a family module registers its models (lazily: timm is imported only when a model is asked for).
    from tunelab.models import cnn, resnet_cifar, timm_models, wrn  # noqa: F401
