"""A trial's model written out for use outside tunelab: safetensors weights, a TorchScript program or an ONNX graph,
each with a model card (JSON) beside it.

TorchScript and ONNX hold `jobs.inference.InferenceModel`: normalisation and resize are inside the graph, so they take
raw float images in [0, 1] at the dataset's stored size (MNIST 1x28x28, CIFAR-100 3x32x32), any batch size, and return
logits. safetensors holds the network's own state dict (what `models.build` builds); its card gives the mean, std and
input size to apply first. Exports are fp32, in eval mode, and checked before they are kept: the written file is loaded
back (torch.jit.load, onnxruntime) and its logits compared with the checkpoint's on a batch. Writes are atomic: temp
files beside the target, renamed into place once all is well; on any failure nothing is left.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch

from tunelab import models
from tunelab.errors import exception_line
from tunelab.jobs.errors import JobError
from tunelab.jobs.inference import InferenceModel, TrialModel

# format -> the file name ending used when no path is given
FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}
CARD_SUFFIX = ".json"  # the card is the weights' path with this appended: model.onnx -> model.onnx.json
CHECK_BATCH = 8  # images the exported file is checked on (not the batch it was traced with: the batch axis is free)
# Largest |logit| difference from the checkpoint an export may show, relative to the logits' scale (at least 1):
# fp32 kernels of different libraries agree to ~1e-6; a wrong graph is off by whole units.
TOLERANCE = 1e-3


def card_path(out: Path) -> Path:
    """Where the model card of the file `out` goes: beside it, `.json` appended to its name."""
    out = Path(out)
    return out.with_name(out.name + CARD_SUFFIX)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise JobError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt


def check_destination(out: Path) -> Path:
    """`out` as a file path the export may write (its folder exists, it is not a folder); JobError otherwise."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise JobError(f"--out {out} is a folder; give a file path, e.g. {out / 'model.onnx'}")
    if not out.parent.is_dir():
        raise JobError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another path")
    return out.resolve()


def model_card(tm: TrialModel, fmt: str, *, trial: dict, run: dict, class_names: list[str], version: str,
               extra: dict | None = None) -> dict:
    """What a user of the exported file needs to know: the model and its config, classes, the input it takes,
    accuracies, and where it came from. `trial` and `run` are the store's records."""
    inside = fmt != "safetensors"
    cfg = tm.cfg
    return {
        "format": fmt,
        "model": cfg.model,
        "family": models.model_info(cfg.model).family,
        "config": cfg.model_dump(mode="json"),
        "dataset": cfg.dataset,
        "labels": cfg.labels,
        "num_classes": tm.num_classes,
        "class_names": class_names,
        **(extra or {}),
        "input": {
            "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
            "channels": tm.in_chans, "size": tm.img_size,
            "model_input_size": tm.input_size,
            "mean": list(tm.mean), "std": list(tm.std),
            "normalisation": ("inside the graph: pass raw [0, 1] images of the stored size; it subtracts mean, "
                              "divides by std and resizes to model_input_size (bilinear)") if inside else
                             ("not included: subtract mean, divide by std per channel and resize to model_input_size "
                              "(bilinear) before calling the network"),
        },
        "output": "logits (N, num_classes); softmax gives probabilities",
        "metrics": {
            "val_acc": trial.get("best_val_acc"), "best_epoch": trial.get("best_epoch"),
            "checkpoint_epoch": tm.epoch, "checkpoint_val_acc": tm.last_metrics.get("val_acc"),
            "test_acc": trial.get("test_acc"), "test_acc_coarse": trial.get("test_acc_coarse"),
            "val_acc_coarse": trial.get("best_val_acc_coarse"),
        },
        "params": models.count_parameters(tm.model),
        "trial_id": trial.get("id"), "run_id": trial.get("run"), "run_name": run.get("name"),
        "run_kind": run.get("kind"),
        "tunelab_version": version, "torch_version": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def export_model(tm: TrialModel, fmt: str, out: Path, card: dict) -> Path:
    """Write `tm` as `fmt` to `out` and `card` beside it (`card_path(out)`), checked and atomically; the path written."""
    check_format(fmt)
    out = check_destination(out)
    tmp_model = _temp_beside(out)
    tmp_card = _temp_beside(card_path(out))
    try:
        _WRITERS[fmt](tm, tmp_model, card)
        tmp_card.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_model, out)
        os.replace(tmp_card, card_path(out))
    finally:
        for p in (tmp_model, tmp_card):
            p.unlink(missing_ok=True)
    return out


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp's 0600 would make the renamed file private; write as open() would
    return Path(name)


def check_batch(tm: TrialModel) -> torch.Tensor:
    """A seeded batch of raw [0, 1] images of the stored size: what exported files are compared on."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(CHECK_BATCH, tm.in_chans, tm.img_size, tm.img_size, generator=g)


def check_logits(fmt: str, got, want: torch.Tensor) -> float:
    """The largest |difference| between an exported file's logits `got` and the checkpoint's `want`; JobError if it
    is over TOLERANCE times their scale."""
    got = torch.as_tensor(got, dtype=torch.float32)
    if got.shape != want.shape:
        raise JobError(f"the exported {fmt} model returns shape {tuple(got.shape)}, the checkpoint {tuple(want.shape)}; "
                       f"nothing was written: try another --format")
    diff = (got - want).abs().max().item()
    limit = TOLERANCE * max(1.0, want.abs().max().item())
    if not diff <= limit:  # NaN fails too
        raise JobError(f"the exported {fmt} model's logits differ from the checkpoint's by {diff:.3g} (over {limit:.3g}) "
                       f"on a check batch; nothing was written: try another --format")
    return diff


def _reference(tm: TrialModel) -> tuple[InferenceModel, torch.Tensor, torch.Tensor]:
    net = tm.inference()
    x = check_batch(tm)
    with torch.inference_mode():
        return net, x, net(x)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' progress prints and deprecation warnings are not the user's business."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _write_safetensors(tm: TrialModel, path: Path, card: dict) -> None:
    from safetensors.torch import load_model, save_model

    save_model(tm.model, str(path), metadata={"tunelab_card": json.dumps(card, sort_keys=True)})
    fresh = models.build(tm.cfg.model, num_classes=tm.num_classes, in_chans=tm.in_chans, img_size=tm.input_size).eval()
    load_model(fresh, str(path))
    net, x, want = _reference(tm)
    with torch.inference_mode():
        check_logits("safetensors", InferenceModel(fresh, tm.mean, tm.std, net.size)(x), want)


def _write_torchscript(tm: TrialModel, path: Path, card: dict) -> None:
    net, x, want = _reference(tm)
    try:
        with _quiet():
            program = torch.jit.trace(net, x[:2], check_trace=False)
            program.save(str(path), _extra_files={"tunelab_card.json": json.dumps(card, sort_keys=True)})
    except Exception as e:
        raise JobError(f"{tm.cfg.model} does not export to TorchScript ({exception_line(e, limit=160)}); "
                       f"use --format onnx or safetensors") from None
    with torch.inference_mode(), _quiet():
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        check_logits("torchscript", loaded(x), want)


def _write_onnx(tm: TrialModel, path: Path, card: dict) -> None:
    import onnxruntime as ort

    net, x, want = _reference(tm)
    try:
        with _quiet():
            program = torch.onnx.export(net, (x[:2],), dynamo=True, verbose=False, input_names=["images"],
                                        output_names=["logits"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
            program.model.metadata_props["tunelab_card"] = json.dumps(card, sort_keys=True)
            program.save(str(path), external_data=False)  # one file; ONNX caps it at 2 GB
    except Exception as e:
        raise JobError(f"{tm.cfg.model} does not export to ONNX ({exception_line(e, limit=160)}); "
                       f"use --format torchscript or safetensors") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check_logits("onnx", session.run(["logits"], {"images": x.numpy()})[0], want)


_WRITERS: dict[str, Callable[[TrialModel, Path, dict], None]] = {
    "safetensors": _write_safetensors, "torchscript": _write_torchscript, "onnx": _write_onnx,
}
