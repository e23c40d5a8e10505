"""A trained checkpoint written out (safetensors, TorchScript, ONNX) and brought back for inference: exported files give
the checkpoint's predictions on real MNIST, the normalisation and resize travel inside the graph, a file that does not
match is never kept, images are read as the model expects."""

import copy
import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tests import fakedata
from tunelab import models
from tunelab.jobs import datasets
from tunelab.jobs.augment import Augmenter
from tunelab.jobs.config import make_config
from tunelab.jobs.errors import JobError
from tunelab.jobs.export import card_path, check_logits, export_model
from tunelab.jobs.inference import (
    as_split,
    class_names,
    load_trial_model,
    probabilities,
    read_images,
    scores,
    split_data,
)
from tunelab.jobs.loop import evaluate_checkpoint, run_training, save_checkpoint

N_CHECK = 100  # real MNIST test images the exported files are compared on


@pytest.fixture(scope="module")
def trained(mnist_root, tmp_path_factory):
    """A cnn trained one epoch on 1,000 real MNIST images, its checkpoint saved in a folder as a run saves it."""
    cfg = make_config(dataset="mnist", model="cnn", epochs=1, subset=1000, batch_size=32, precision="fp32")
    prepared = split_data(cfg, mnist_root)
    states = []
    run_training(cfg, prepared, report=lambda m, s: states.append(copy.deepcopy(s)))
    folder = tmp_path_factory.mktemp("checkpoint")
    save_checkpoint(states[-1], folder)
    return folder, prepared


def _card(fmt):
    return {"format": fmt, "note": "test"}


def _training_top1(tm, x_uint8):
    """Predictions made the way training evaluated: uint8 through the Augmenter's normalise (and resize), the net."""
    size = tm.input_size if tm.input_size != tm.img_size else None
    norm = Augmenter("none", tm.cfg.dataset, tm.mean, tm.std, tm.num_classes, torch.device("cpu"), size=size).normalise
    with torch.inference_mode():
        logits = tm.model(norm(torch.as_tensor(x_uint8)))
    return logits, logits.argmax(1)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_onnx_torchscript_and_safetensors_give_the_checkpoints_top1_on_real_mnist(trained, tmp_path):
    import onnxruntime as ort
    from safetensors.torch import load_model

    folder, prepared = trained
    tm = load_trial_model(folder, "t")
    x = prepared.test_x[:N_CHECK]
    want_logits, want = _training_top1(tm, x)
    raw = torch.as_tensor(x).float() / 255  # what the exported graphs take: raw [0, 1] images, 1x28x28

    onnx_path = export_model(tm, "onnx", tmp_path / "m.onnx", _card("onnx"))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = torch.as_tensor(session.run(["logits"], {"images": raw.numpy()})[0])
    assert torch.equal(got.argmax(1), want)
    assert (got - want_logits).abs().max().item() < 1e-3

    ts_path = export_model(tm, "torchscript", tmp_path / "m.pt", _card("torchscript"))
    with torch.inference_mode():
        got = torch.jit.load(str(ts_path))(raw)
    assert torch.equal(got.argmax(1), want)

    st_path = export_model(tm, "safetensors", tmp_path / "m.safetensors", _card("safetensors"))
    fresh = models.build("cnn", num_classes=10, in_chans=1, img_size=28).eval()
    load_model(fresh, str(st_path))
    with torch.inference_mode():  # weights only: normalised as the card says
        got = fresh((raw - tm.mean[0]) / tm.std[0])
    assert torch.equal(got.argmax(1), want)

    # the model is not all one class: the comparison means something
    assert len(set(want.tolist())) >= 5
    for p in (onnx_path, ts_path, st_path):
        assert json.loads(card_path(p).read_text()) == _card(json.loads(card_path(p).read_text())["format"])
        assert card_path(p).name == p.name + ".json"
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(
        ["m.onnx", "m.onnx.json", "m.pt", "m.pt.json", "m.safetensors", "m.safetensors.json"])  # no temp files left


def test_the_resize_to_the_models_input_size_is_inside_the_exported_graph(mnist_root, trained, tmp_path):
    import onnxruntime as ort

    _, prepared = trained
    # a checkpoint of resnet20 that sees MNIST at 32 px (as `--input-size 32` trains it): inputs stay 28 px
    cfg = make_config(dataset="mnist", model="resnet20", epochs=1, subset=1000, input_size=32, precision="fp32")
    torch.manual_seed(0)
    net = models.build("resnet20", num_classes=10, in_chans=1, img_size=32)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_checkpoint({"model": net.state_dict(), "config": cfg.model_dump(), "epoch": 0, "history": []}, folder)
    tm = load_trial_model(folder, "t")
    assert (tm.img_size, tm.input_size) == (28, 32)
    x = prepared.test_x[:N_CHECK]
    want_logits, want = _training_top1(tm, x)
    path = export_model(tm, "onnx", tmp_path / "r.onnx", _card("onnx"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [1, 28, 28]
    got = torch.as_tensor(session.run(["logits"], {"images": (torch.as_tensor(x).float() / 255).numpy()})[0])
    assert (got - want_logits).abs().max().item() < 1e-3
    assert torch.equal(got.argmax(1), want)


class _CountsCalls(torch.nn.Module):
    """A net whose output depends on Python state (how often it was called) that an exported graph freezes as a
    constant: no export of it reproduces it."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x) + self.calls


def test_an_export_that_does_not_match_the_checkpoint_is_refused_and_nothing_is_written(trained, tmp_path):
    folder, _ = trained
    tm = load_trial_model(folder, "t")
    tm = dataclasses.replace(tm, model=_CountsCalls(tm.model))
    for fmt, name in (("onnx", "x.onnx"), ("torchscript", "x.pt")):
        with pytest.raises(JobError, match=rf"^the exported {fmt} model's logits differ .* nothing was written"):
            export_model(tm, fmt, tmp_path / name, _card(fmt))
    assert list(tmp_path.iterdir()) == []
    want = torch.zeros(4, 10)
    assert check_logits("onnx", want + 1e-6, want) <= 1e-6
    with pytest.raises(JobError, match="returns shape"):
        check_logits("onnx", torch.zeros(4, 9), want)
    with pytest.raises(JobError, match="differ"):
        check_logits("onnx", torch.full((4, 10), float("nan")), want)


def test_bad_destinations_and_formats_are_one_line_before_anything_is_written(trained, tmp_path):
    folder, _ = trained
    tm = load_trial_model(folder, "t")
    with pytest.raises(JobError, match="unknown export format 'tflite'; choose one of: safetensors, torchscript, onnx"):
        export_model(tm, "tflite", tmp_path / "m.tflite", {})
    with pytest.raises(JobError, match="is a folder; give a file path"):
        export_model(tm, "onnx", tmp_path, {})
    with pytest.raises(JobError, match="does not exist; create it"):
        export_model(tm, "onnx", tmp_path / "nope" / "m.onnx", {})
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_checkpoint_names_the_trial(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(JobError, match=r"^trial T: checkpoint .*checkpoint.pt cannot be read \(\w+\); train it again"):
        load_trial_model(tmp_path, "T")


def test_evaluate_checkpoint_on_either_split_reproduces_the_training_figures(trained):
    folder, prepared = trained
    tm = load_trial_model(folder, "t")
    last = tm.last_metrics
    assert tm.epoch == 1
    val = evaluate_checkpoint(tm.cfg, as_split(prepared, "val"), tm.state)
    test = evaluate_checkpoint(tm.cfg, as_split(prepared, "test"), tm.state)
    assert val["test_acc"] == pytest.approx(last["val_acc"], abs=5e-4) and val["test_images"] == len(prepared.val_y)
    assert test["test_acc"] == pytest.approx(last["test_acc"], abs=5e-4)
    # the inference wrapper's probabilities agree with that evaluation (up to a near-tie or two)
    net = tm.inference()
    s = scores(probabilities([net], torch.as_tensor(prepared.test_x)), prepared.test_y)
    assert abs(s["acc"] - test["test_acc"]) <= 2 / len(prepared.test_y) and s["images"] == len(prepared.test_y)
    assert s["loss"] == pytest.approx(test["test_loss"], rel=1e-3)
    # an ensemble of one model twice is that model
    assert torch.allclose(probabilities([net, net], torch.as_tensor(prepared.test_x[:50])),
                          probabilities([net], torch.as_tensor(prepared.test_x[:50])), atol=1e-6)
    with pytest.raises(JobError, match="unknown split 'train'"):
        as_split(prepared, "train")


def test_image_files_are_read_as_the_model_takes_them(trained, tmp_path):
    _, prepared = trained
    digits = prepared.test_x[:3, 0]
    for i, d in enumerate(digits):
        Image.fromarray(d).save(tmp_path / f"{i}.png")
    Image.fromarray(digits[0]).convert("RGB").save(tmp_path / "rgb.jpg", quality=100)
    Image.fromarray(np.kron(digits[1], np.ones((2, 2), dtype=np.uint8))).save(tmp_path / "big.png")  # 56 px
    x = read_images([tmp_path / "0.png", tmp_path / "1.png", tmp_path / "2.png"], 1, 28)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, torch.as_tensor(digits[:, None]).float() / 255)  # PNG is lossless: exactly the digits
    rgb = read_images([tmp_path / "rgb.jpg"], 1, 28)  # colour JPEG -> grey
    assert (rgb[0, 0] - torch.as_tensor(digits[0]).float() / 255).abs().mean() < 0.02
    big = read_images([tmp_path / "big.png"], 1, 28)  # resized to the stored size
    assert big.shape == (1, 1, 28, 28) and (big[0, 0] - torch.as_tensor(digits[1]).float() / 255).abs().mean() < 0.05
    colour = read_images([tmp_path / "0.png"], 3, 32)  # a CIFAR model's input: RGB at 32 px
    assert colour.shape == (1, 3, 32, 32) and torch.equal(colour[:, 0], colour[:, 1])
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(JobError, match=r"notes.png is not a readable image \(UnidentifiedImageError\); pass PNG or JPEG"):
        read_images([tmp_path / "0.png", tmp_path / "notes.png"], 1, 28)
    with pytest.raises(JobError, match="missing.png: no such file"):
        read_images([tmp_path / "missing.png"], 1, 28)
    with pytest.raises(JobError, match="a folder, not an image"):
        read_images([tmp_path], 1, 28)


def test_class_names_are_digits_and_the_cifar_meta_names(tmp_path):
    assert class_names("mnist", "fine", tmp_path) == [str(d) for d in range(10)]
    with pytest.raises(JobError, match="CIFAR-100 is not in the data root"):
        class_names("cifar100", "fine", tmp_path)
    fakedata.write_cifar100(tmp_path, n_train=200, n_test=20)
    fine, coarse = class_names("cifar100", "fine", tmp_path), class_names("cifar100", "coarse", tmp_path)
    assert len(fine) == 100 and fine[7] == "fine_07" and len(coarse) == 20 and coarse[3] == "coarse_03"
    assert os.path.isdir(tmp_path / datasets.BUILTINS["cifar100"].folder)
