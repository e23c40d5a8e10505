"""ImageNet-pretrained transfer with the real tf_efficientnet_lite0 weights (../shared/weights or .cache/weights)."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, find_weights
from tunelab import models
from tunelab.models import ModelError


@pytest.fixture(scope="module")
def weights() -> str:
    return str(find_weights())


@pytest.fixture(scope="module")
def file_state(weights):
    return torch.load(weights, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("img_size", [32, 224])
def test_backbone_equals_the_file_and_the_head_is_fresh(weights, file_state, img_size):
    m = models.build("tf_efficientnet_lite0", num_classes=100, in_chans=3, img_size=img_size, pretrained=weights)
    sd = m.state_dict()
    backbone = [k for k in file_state if not k.startswith("classifier.")]
    assert len(backbone) > 250
    for k in backbone:
        assert torch.equal(sd[k], file_state[k]), k
    assert sd["classifier.weight"].shape == (100, 1280) and file_state["classifier.weight"].shape == (1000, 1280)
    assert sd["classifier.weight"].abs().sum() > 0
    assert models.input_normalization(m, 3) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_one_channel_inputs_reuse_rgb_weights(weights, file_state):
    m = models.build("tf_efficientnet_lite0", num_classes=10, in_chans=1, img_size=28, pretrained=weights)
    assert m.conv_stem.weight.shape[1] == 1
    # timm's adapt_input_conv: a grey image through summed RGB filters gives what the RGB net saw
    assert torch.allclose(m.conv_stem.weight, file_state["conv_stem.weight"].sum(1, keepdim=True))
    assert torch.equal(m.state_dict()["blocks.6.0.conv_pwl.weight"], file_state["blocks.6.0.conv_pwl.weight"])
    assert models.input_normalization(m, 1) == ((0.5,), (0.5,))


def test_weights_that_do_not_fit_are_one_clear_error(weights):
    with pytest.raises(ModelError, match="do not fit resnet18.*use weights for this architecture") as e:
        models.build("resnet18", num_classes=10, in_chans=3, img_size=32, pretrained=weights)
    assert "\n" not in str(e.value)


def test_garbage_weights_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load weights"):
        models.build("tf_efficientnet_lite0", num_classes=10, pretrained=str(bad))


def _build_in_subprocess(env: dict) -> subprocess.CompletedProcess:
    code = ("import models, time, timm; t = time.monotonic()\n"
            "try:\n    m = models.build('tf_efficientnet_lite0', num_classes=10, in_chans=1, img_size=28, pretrained=True)\n"
            "    print('OK', m.conv_stem.weight.sum().item())\n"
            "except models.ModelError as e:\n    print('ERR', round(time.monotonic() - t, 2), e)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=120)


def test_offline_hub_without_cache_fails_fast_with_one_line(tmp_path):
    # No cache, and a hub endpoint that refuses connections: what an air-gapped cluster sees.
    proc = _build_in_subprocess({"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.stdout.startswith("ERR"), proc.stdout + proc.stderr
    seconds = float(proc.stdout.split()[1])
    assert seconds < 2.0  # from asking to the error, imports aside; timm alone retries for ~46 s here
    assert "not in the local hub cache" in proc.stdout and "--pretrained PATH" in proc.stdout


def test_pretrained_true_uses_the_local_hub_cache_offline(tmp_path, file_state):
    # Lay the real weights out as huggingface_hub caches them, then ask for pretrained=True with no network.
    import safetensors.torch

    repo = tmp_path / "hf" / "hub" / "models--timm--tf_efficientnet_lite0.in1k"
    snap = repo / "snapshots" / "0123456789abcdef"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    safetensors.torch.save_file({k: v.contiguous() for k, v in file_state.items()}, str(snap / "model.safetensors"))
    proc = _build_in_subprocess({"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.stdout.startswith("OK"), proc.stdout + proc.stderr
    expected = file_state["conv_stem.weight"].sum(1, keepdim=True).sum().item()
    assert float(proc.stdout.split()[1]) == pytest.approx(expected, rel=1e-5)
