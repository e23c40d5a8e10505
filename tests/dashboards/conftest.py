"""A store filled through the store API (the same calls training and sweeps make), and the dashboard served over
it by a real uvicorn on a free loopback port."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, _free_port

XSS = "<script>alert(1)</script>"
# what a trial ran on, as the loop reports it with its first epoch (jobs.step.runtime_info)
RUNTIME = {"precision": "bf16", "channels_last": True, "compile": False, "device": "cuda", "torch": "2.14.1",
           "workers": 4, "threads": 8, "device_name": "NVIDIA H100 80GB HBM3 <i>", "cuda": "13.0", "bf16_native": True}
MNIST_BOARD = {"fine": {"val": "val_acc", "test": "test_acc"}}
CIFAR_BOARDS = {"fine": {"val": "val_acc", "test": "test_acc"}, "coarse": {"val": "val_acc_coarse", "test": "test_acc_coarse"}}


def add_trial(store, run_id, tid, *, model="cnn", family="cnn", dataset="mnist", augment="none", pretrained="false",
              params=None, accs=(0.9,), status="completed", test=None, coarse=None, start=1_000_000.0, runtime=None):
    boards = CIFAR_BOARDS if dataset == "cifar100" else MNIST_BOARD
    store.start_trial(tid, run_id=run_id, model=model, family=family, dataset=dataset, labels="fine", boards=boards,
                      augment=augment, pretrained=pretrained, params=params or {})
    for e, acc in enumerate(accs, 1):
        rec = {"epoch": e, "val_acc": acc, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "images_per_s": 1000.0 + e,
               "time_total_s": 3.0 * e, "params": 431_242, "recorded_at": start + 10 * e}
        if coarse is not None:
            rec["val_acc_coarse"] = coarse[e - 1]
        if runtime is not None and e == 1:
            rec["runtime"] = runtime
        store.record_epoch(tid, rec)
    if test is not None:
        store.record_test(tid, test)
    store.finish_trial(tid, status)


def fill(store) -> dict:
    """A sweep named like an XSS attempt with 6 trials (2 early-stopped), a training run, and a CIFAR-100 run."""
    from tunelab.jobs.datasets import BUILTINS
    from tunelab.results.catalogue import describe_datasets

    # as a run's start does (jobs.lifecycle.describe_dataset): what its dataset is
    describe_datasets(store, {n: BUILTINS[n].describe() for n in ("mnist", "cifar100")})
    store.start_run("sw", kind="sweep", name=XSS, dataset="mnist", labels="fine", config={"space": {}}, started=1_000_000.0)
    accs = {"00000": (0.50, 0.70, 0.91), "00001": (0.60, 0.80, 0.95), "00002": (0.40, 0.60, 0.85),
            "00003": (0.30,), "00004": (0.20,), "00005": (0.55, 0.75, 0.93)}
    lrs = {"00000": 0.001, "00001": 0.003, "00002": 0.0001, "00003": 0.00003, "00004": 0.01, "00005": 0.002}
    for i, (t, a) in enumerate(accs.items()):
        add_trial(store, "sw", f"sw-{t}", model="cnn" if i % 2 else "resnet20", family="cnn" if i % 2 else "resnet_cifar",
                  augment="crop:2" if i < 3 else "none", params={"lr": lrs[t], "augment": "crop:2" if i < 3 else "none",
                                                                   "batch_size": 64 if i % 3 else 128},
                  accs=a, status="completed" if len(a) == 3 else "stopped")
    store.record_test("sw-00001", {"test_acc": 0.96})
    store.finish_run("sw", "completed")
    store.start_run("tr", kind="train", name="lite0-transfer", dataset="mnist", labels="fine", config={"epochs": 2})
    add_trial(store, "tr", "tr-t0", model="tf_efficientnet_lite0", family="efficientnet", pretrained="/w/lite0.pth",
              params={"lr": 0.001, "batch_size": 64, "optimizer": "adamw", "epochs": 2, "seed": 0, "workers": 1,
                      "weight_decay": 0.0005, "schedule": "onecycle", "momentum": 0.9, "val_fraction": 0.1,
                      "label_smoothing": 0.0, "input_size": None, "freeze_epochs": 0, "eval_batch_size": 1024},
              accs=(0.90, 0.94), test={"test_acc": 0.945}, runtime=RUNTIME)
    store.finish_run("tr", "completed")
    store.start_run("cf", kind="train", name="cifar", dataset="cifar100", labels="fine", config={})
    add_trial(store, "cf", "cf-t0", model="resnet20", family="resnet_cifar", dataset="cifar100", accs=(0.1, 0.2),
              coarse=(0.2, 0.35), test={"test_acc": 0.19, "test_acc_coarse": 0.33})
    store.finish_run("cf", "completed")
    # validation order on the MNIST board, best first
    return {"mnist_order": ["sw-00001", "tr-t0", "sw-00005", "sw-00000", "sw-00002", "sw-00003", "sw-00004"]}


@pytest.fixture
def filled(store):
    return store, fill(store)


class LiveServer:
    """`tunelab dashboard`'s app under a real uvicorn in a thread."""

    def __init__(self, store):
        import uvicorn

        from tunelab.dashboards.web import create_app

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(lambda: store), host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "dashboard did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)


# A real headless Chromium for the browser tests (Debian's, driven by Playwright); screenshots land in ARTIFACTS.
ARTIFACTS = Path(os.environ.get("TUNELAB_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
# Flags for a root user in a container on a closed network (see README, "Tests").
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # WebGL (parallel coordinates) on the CPU
# SVG elements other than plotly's: its charts and the one it measures text in
NOT_PLOTLY_SVG = "svg:not(.js-plotly-plot svg):not(#js-plotly-tester)"


def chromium_path() -> str:
    found = os.environ.get("TUNELAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no Chromium: install Debian's `chromium` (apt-get install chromium) or set TUNELAB_CHROMIUM")
    return found


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
