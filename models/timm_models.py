"""timm families adapted to small images, ImageNet-pretrained transfer, and the `timm/<name>` passthrough.

Weights always come through timm's own loader (`pretrained_cfg_overlay=dict(file=...)`): it adapts the first
conv to 1-channel inputs, drops the 1000-class head for a fresh one, resamples ViT patch and position
embeddings, and loads with `weights_only`. Stems are adapted *after* loading, so only layers whose shape
changes (ResNet's 7x7 stem) start fresh; stride changes keep every weight.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import torch.nn as nn

from tunelab.errors import exception_line
from tunelab.models.registration import SMALL_INPUT, ModelError, ModelInfo, Pretrained, register_model

HUB_PROBE_TIMEOUT_S = 1.5


def _timm():
    import timm

    return timm


# ------------------------------------------------------------------------------------------ pretrained


def _hub_endpoint() -> tuple[str, int]:
    parts = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return parts.hostname or "huggingface.co", parts.port or (443 if parts.scheme == "https" else 80)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the model hub answers a TCP connect within `timeout` (no retries: offline must fail fast)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    import concurrent.futures as cf

    host, port = _hub_endpoint()

    def probe() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    pool = cf.ThreadPoolExecutor(1)
    try:
        return pool.submit(probe).result(timeout=timeout)  # bounds DNS too, which has no timeout of its own
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


def cached_weights(timm_name: str) -> Optional[Path]:
    """The local hub cache's copy of `timm_name`'s default weights, if there is one."""
    cfg = _timm().models.get_pretrained_cfg(timm_name)
    if cfg is None:
        return None
    cfg = cfg.to_dict()
    if cfg.get("hf_hub_id"):
        from huggingface_hub import try_to_load_from_cache

        for fname in (cfg.get("hf_hub_filename") or "model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(cfg["hf_hub_id"], fname)
            if isinstance(found, str):
                return Path(found)
    if cfg.get("url"):
        import torch.hub

        p = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlsplit(cfg["url"]).path).name
        if p.is_file():
            return p
    return None


def weights_source(timm_name: str) -> str:
    """'cached' (in the local hub cache), 'hub' (downloadable), or 'none' (timm has no weights)."""
    cfg = _timm().models.get_pretrained_cfg(timm_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        return "none"
    return "cached" if cached_weights(timm_name) else "hub"


def _weights_file(timm_name: str, pretrained: Pretrained) -> str:
    """A local file holding the weights asked for; ModelError at once when they cannot be had."""
    if isinstance(pretrained, (str, Path)):
        return str(pretrained)
    cached = cached_weights(timm_name)
    if cached:
        return str(cached)
    if weights_source(timm_name) == "none":
        raise ModelError(f"timm has no pretrained weights for {timm_name}; train from scratch or pass --pretrained PATH")
    if not hub_reachable():
        host, _ = _hub_endpoint()
        raise ModelError(
            f"ImageNet weights for {timm_name} are not in the local hub cache and {host} is unreachable; "
            f"pass --pretrained PATH to a weights file (or cache them on a machine with network)"
        )
    from huggingface_hub import hf_hub_download

    cfg = _timm().models.get_pretrained_cfg(timm_name).to_dict()
    try:
        return hf_hub_download(cfg["hf_hub_id"], cfg.get("hf_hub_filename") or "model.safetensors")
    except Exception as e:
        raise ModelError(f"could not download weights for {timm_name} ({type(e).__name__}); pass --pretrained PATH") from None


def create(timm_name: str, num_classes: int, in_chans: int, pretrained: Pretrained = None, **kwargs) -> nn.Module:
    """timm.create_model with tunelab's pretrained semantics and one-line errors."""
    timm = _timm()
    overlay = None
    if pretrained is not None:
        overlay = dict(file=_weights_file(timm_name, pretrained))
    # timm logs each adaptation (in_chans, head) at INFO; keep user output clean.
    logging.getLogger("timm").setLevel(logging.WARNING)
    try:
        model = timm.create_model(
            timm_name, pretrained=pretrained is not None, pretrained_cfg_overlay=overlay,
            num_classes=num_classes, in_chans=in_chans, **kwargs,
        )
    except RuntimeError as e:
        if pretrained is None:
            raise
        if "loading state_dict" not in str(e):  # not a mismatch: the file itself is unreadable
            raise ModelError(f"cannot load weights from {overlay['file']} ({str(e).splitlines()[0][:120]}); "
                             f"pass a state dict saved with torch.save or safetensors") from None
        lines = [ln.strip() for ln in str(e).strip().splitlines()]
        detail = next((ln for ln in lines if ln.startswith(("Missing", "Unexpected", "size mismatch"))), lines[0])
        raise ModelError(f"weights in {overlay['file']} do not fit {timm_name} ({detail[:140]}…); "
                         f"use weights for this architecture") from None
    except Exception as e:
        if pretrained is None:
            raise
        raise ModelError(f"cannot load weights from {overlay['file']} ({exception_line(e, limit=160)})") from None
    model.tunelab_pretrained = pretrained is not None
    return model


# ------------------------------------------------------------------------------------- small-image stems


def _adapt_resnet(model: nn.Module, in_chans: int) -> nn.Module:
    # CIFAR practice (e.g. kuangliu/pytorch-cifar): a 3x3 stride-1 stem and no max-pool, so 32 px stays 32 px
    # into layer1. The 7x7 ImageNet stem's weights do not fit a 3x3 kernel: this one layer starts fresh.
    out = model.conv1.out_channels
    model.conv1 = nn.Conv2d(in_chans, out, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def _adapt_efficientnet(model: nn.Module) -> nn.Module:
    # Stride 1 in the stem and in the first stride-2 stage: 32 px ends at 4x4 instead of 1x1. Only strides
    # change, so every pretrained weight still applies. tf_* ports use Conv2dSame, whose padding follows stride.
    model.conv_stem.stride = (1, 1)
    model.blocks[1][0].conv_dw.stride = (1, 1)
    return model


def _register_resnet(name: str, timm_name: str, params: str, reference: str) -> None:
    def builder(num_classes: int, in_chans: int, img_size: int, pretrained: Pretrained = None) -> nn.Module:
        model = create(timm_name, num_classes, in_chans, pretrained)
        return _adapt_resnet(model, in_chans) if img_size < SMALL_INPUT else model

    register_model(name, family="resnet_timm", native_img_size=32, timm_name=timm_name, reference=reference,
                   description=f"timm {timm_name}, 3x3 stride-1 stem, no max-pool below 64 px ({params})")(builder)


def _register_efficientnet(name: str, params: str) -> None:
    def builder(num_classes: int, in_chans: int, img_size: int, pretrained: Pretrained = None) -> nn.Module:
        model = create(name, num_classes, in_chans, pretrained)
        return _adapt_efficientnet(model) if img_size < SMALL_INPUT else model

    register_model(name, family="efficientnet", native_img_size=32, timm_name=name,
                   reference="Tan & Le 2019 (B0: 5.3 M with 1000 classes); timm",
                   description=f"timm {name}, stem and stage-2 strides 1 below 64 px ({params})")(builder)


def _register_vit(name: str, timm_name: str, params: str) -> None:
    def builder(num_classes: int, in_chans: int, img_size: int, pretrained: Pretrained = None) -> nn.Module:
        # patch 4 at 32 px (8x8 tokens); at 224 the ImageNet patch 16. timm resamples pretrained patch and
        # position embeddings to whatever is asked.
        patch = 4 if img_size < SMALL_INPUT else 16
        if img_size % patch:
            raise ModelError(f"{name} needs an input size divisible by its patch {patch} (got {img_size}); use --input-size")
        return create(timm_name, num_classes, in_chans, pretrained, img_size=img_size, patch_size=patch)

    register_model(name, family="vit", native_img_size=32, timm_name=timm_name,
                   reference="Dosovitskiy et al. 2021 / DeiT (Touvron et al. 2021): Ti 5.7 M, S 22 M at 224 px",
                   description=f"timm {timm_name}, patch 4 at 32 px ({params})")(builder)


_register_resnet("resnet18", "resnet18", "11.2 M", "He et al. 2016 ResNet-18; CIFAR variant as in kuangliu/pytorch-cifar: 11.2 M with 100 classes")
_register_resnet("resnet50", "resnet50", "23.7 M", "He et al. 2016 ResNet-50: 25.6 M with 1000 classes; 23.7 M with 100")
_register_efficientnet("efficientnet_b0", "4.1 M")
_register_efficientnet("tf_efficientnet_lite0", "3.5 M")
_register_vit("vit_tiny", "vit_tiny_patch16_224", "5.4 M")
_register_vit("vit_small", "vit_small_patch16_224", "21.4 M")


# --------------------------------------------------------------------------------------- timm/<name>


def timm_passthrough(timm_name: str) -> ModelInfo:
    """A registry entry for any timm model, built as timm builds it (no small-image adaptation)."""
    timm = _timm()
    if not timm.is_model(timm_name):
        close = timm.list_models(f"*{timm_name[:6]}*")[:5] if len(timm_name) >= 3 else []
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ModelError(f"timm has no model {timm_name!r}{hint} (see timm.list_models())")
    cfg = timm.models.get_pretrained_cfg(timm_name)
    native = cfg.input_size[-1] if cfg is not None and cfg.input_size else 224

    def builder(num_classes: int, in_chans: int, img_size: int, pretrained: Pretrained = None) -> nn.Module:
        try:
            return create(timm_name, num_classes, in_chans, pretrained, img_size=img_size)
        except TypeError:  # most CNNs take no img_size
            return create(timm_name, num_classes, in_chans, pretrained)

    return ModelInfo(f"timm/{timm_name}", "timm", native, f"timm {timm_name} as timm builds it", builder,
                     timm_name=timm_name)
