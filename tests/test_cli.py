"""The `tunelab` CLI end to end, as a user runs it: real processes, real Ray, the embedded Redis, real MNIST."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, find_weights, run_cli
from tunelab.results import embedded


@pytest.fixture
def user_env(tmp_path):
    """A fresh user: an empty data root and the embedded result store (stopped afterwards)."""
    env = {"TUNELAB_DATA_DIR": str(tmp_path / "data"), "TUNELAB_REDIS_URL": "", "RAY_ADDRESS": ""}
    yield env
    embedded.stop(tmp_path / "data")


@pytest.fixture(scope="module")
def mnist_user_env(tmp_path_factory, mnist_source):
    """A user who has imported real MNIST (with `tunelab data import`), shared by the tests that write nothing."""
    root = tmp_path_factory.mktemp("user") / "data"
    env = {"TUNELAB_DATA_DIR": str(root), "TUNELAB_REDIS_URL": "", "RAY_ADDRESS": ""}
    imp = run_cli("data", "import", str(mnist_source), env=env)
    assert imp.returncode == 0 and "MD5s verified" in imp.stdout, imp.stderr
    yield env
    embedded.stop(root)


def _one_line_error(proc, needle):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert needle in lines[0], lines[0]
    return lines[0]


def test_missing_data_offline_names_the_fix(user_env):
    line = _one_line_error(run_cli("train", "--dataset", "mnist", env=user_env), "MNIST is not in the data root")
    assert "tunelab data import DIR" in line


def test_data_info(mnist_user_env):
    info = run_cli("data", "info", "--json", env=mnist_user_env)
    recs = {r["name"]: r for r in json.loads(info.stdout)["datasets"]}
    assert recs["mnist"]["present"] and recs["mnist"]["train"] == 60_000 and recs["mnist"]["test"] == 10_000
    assert not recs["cifar100"]["present"]


def test_models_list_json():
    proc = run_cli("models", "list", "--dataset", "mnist", "--json")
    recs = {r["name"]: r for r in json.loads(proc.stdout)}
    assert recs["cnn"]["params"] == 431_242 and recs["resnet20"]["family"] == "resnet_cifar"


def test_mnist_two_workers_reaches_98_5_and_lands_on_the_leaderboard(mnist_user_env, store):
    """The issue's acceptance run: full MNIST, 2 epochs, 2 DDP workers, test accuracy >= 98.5 %."""
    user_env = mnist_user_env
    proc = run_cli("train", "--dataset", "mnist", "--model", "cnn", "--epochs", "2", "--workers", "2", env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/2" in proc.stderr and "epoch 2/2" in proc.stderr  # live progress, one line per epoch
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("run ") and "test" in summary

    lb = json.loads(run_cli("leaderboard", "--dataset", "mnist", "--json", env=user_env).stdout)
    assert len(lb) == 1
    row = lb[0]
    assert row["run_id"] in summary and row["model"] == "cnn" and row["epochs"] == 2
    assert row["test_acc"] >= 0.985, row
    assert row["val_acc"] >= 0.98 and row["status"] == "completed"

    runs = json.loads(run_cli("runs", "--json", env=user_env).stdout)
    assert runs[0]["id"] == row["run_id"] and runs[0]["config"]["workers"] == 2
    rt = runs[0]["runtime"]  # what rank 0 trained on: a DDP worker of two, with its share of the cores
    assert rt["workers"] == 2 and rt["threads"] == 1 and rt["device"] == "cpu" and rt["precision"] in ("bf16", "fp32")

    table = run_cli("leaderboard", "--dataset", "mnist", env=user_env)
    assert row["run_name"] in table.stdout and f"{100 * row['test_acc']:.2f}" in table.stdout

    # the run's experiment directory alone rebuilds it in an empty store (epoch history from its checkpoint)
    other = {**user_env, "TUNELAB_REDIS_URL": store.url}
    imp = run_cli("results", "import", str(Path(user_env["TUNELAB_DATA_DIR"]) / "experiments"), env=other)
    assert imp.returncode == 0 and row["run_id"] in imp.stdout, imp.stderr
    assert json.loads(run_cli("leaderboard", "--dataset", "mnist", "--json", env=other).stdout) == lb
    assert [e["epoch"] for e in store.epochs(row["trial_id"])] == [1, 2]


def test_the_smoke_knob_learns_with_the_default_recipe_and_the_run_says_what_it_ran_on(mnist_user_env, store):
    """`tunelab train --dataset mnist --subset 3000`, README's smoke test: the recipe's batch scales to the subset."""
    import html

    import torch
    from fastapi.testclient import TestClient

    from tunelab.dashboards.web import create_app
    from tunelab.jobs.step import cpu_kind, native_bf16

    env = {**mnist_user_env, "TUNELAB_REDIS_URL": store.url}
    proc = run_cli("train", "--dataset", "mnist", "--subset", "3000", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["model"] == "cnn_fast" and rec["status"] == "completed" and rec["test_acc"] >= 0.90, rec
    rt = rec["runtime"]
    precision = "bf16" if native_bf16(torch.device("cpu")) else "fp32"  # what auto means on this CPU
    assert rt["precision"] == precision and rt["device"] == "cpu" and rt["cpu_kind"] == cpu_kind(), rt
    assert rt["device_name"] and rt["workers"] == 1 and rt["threads"] >= 1 and rt["torch"] == torch.__version__.split("+")[0]
    assert store.get_run(rec["run_id"])["runtime"] == rt
    with TestClient(create_app(lambda: store)) as c:
        assert c.get(f"/api/trials/{rec['trial_id']}").json()["trial"]["runtime"] == rt
        page = c.get(f"/trials/{rec['trial_id']}").text
    assert f'id="runtime-precision">{precision}</dd>' in page and html.escape(rt["device_name"]) in page


def test_pretrained_file_is_recorded_and_shown_on_the_leaderboard(mnist_user_env):
    env = mnist_user_env
    weights = str(find_weights())
    proc = run_cli("train", "--dataset", "mnist", "--model", "tf_efficientnet_lite0", "--pretrained", weights,
                   "--epochs", "1", "--subset", "256", "--batch-size", "64", "--lr", "0.001", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["status"] == "completed" and rec["model"] == "tf_efficientnet_lite0"
    rows = json.loads(run_cli("leaderboard", "--dataset", "mnist", "--json", env=env).stdout)
    row = next(r for r in rows if r["run_id"] == rec["run_id"])
    assert row["pretrained"] == weights
    run = next(r for r in json.loads(run_cli("runs", "--json", env=env).stdout) if r["id"] == rec["run_id"])
    assert run["config"]["pretrained"] == weights
    table = run_cli("leaderboard", "--dataset", "mnist", env=env).stdout
    assert Path(weights).name in table


def test_models_list_covers_every_family():
    recs = json.loads(run_cli("models", "list", "--json").stdout)
    names = {r["name"] for r in recs}
    assert {"cnn", "cnn_bn", "resnet20", "resnet32", "resnet56", "resnet110", "wrn16_4", "wrn28_10", "resnet18",
            "resnet50", "efficientnet_b0", "tf_efficientnet_lite0", "vit_tiny", "vit_small"} <= names
    by = {r["name"]: r for r in recs}
    assert by["resnet18"]["params"] == 11_220_132 and by["resnet18"]["dataset"] == "cifar100"
    assert by["wrn28_10"]["params"] == 36_536_884
    assert by["cnn"]["pretrained"] == "none" and by["tf_efficientnet_lite0"]["pretrained"] in ("hub", "cached")
    assert all(r["native_img_size"] in (28, 32) for r in recs)


def test_data_preview_writes_a_readable_png(mnist_user_env, tmp_path):
    from PIL import Image

    out = tmp_path / "grid.png"
    proc = run_cli("data", "preview", "--dataset", "mnist", "--augment", "auto", "--out", str(out), env=mnist_user_env)
    assert proc.returncode == 0, proc.stderr
    assert "augment=crop:2" in proc.stdout
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 800 and im.height > 200
        px = np.asarray(im.convert("L"))
    assert px.std() > 20  # digits on black tiles, not a blank canvas
    bad = run_cli("data", "preview", "--dataset", "mnist", "--augment", "nope", "--out", str(tmp_path / "x.png"),
                  env=mnist_user_env)
    _one_line_error(bad, "unknown augmentation 'nope'")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_the_store_away_at_the_end_of_a_run_loses_nothing(mnist_user_env, tmp_path):
    """Redis stopped after the first epoch and still down when the run ends: training finishes (exit 0) with its
    summary, the epochs and the run's end it could not write are saved to a file, and `tunelab store replay`
    writes them once Redis is back — the store ends as if it had never left."""
    import subprocess
    import sys
    import time

    from tests.conftest import RedisServer
    from tunelab.results import ResultStore

    server = RedisServer(tmp_path / "redis", persist=True).start()
    env = {**mnist_user_env, "TUNELAB_REDIS_URL": server.url, "TUNELAB_STORE_WAIT_S": "3"}
    store = ResultStore.from_url(server.url)
    out, err = tmp_path / "out", tmp_path / "err"
    # in this process (no Ray to start) an epoch of 2,000 images takes under a second: 12,000 leave the test time
    # to stop Redis after the first epoch's write and before the second's
    proc = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "train", "--model", "cnn", "--epochs", "3", "--subset",
                             "12000", "--batch-size", "64", "--json"], env={**__import__("os").environ, **env}, cwd=ROOT,
                            stdout=out.open("w"), stderr=err.open("w"))
    try:
        deadline = time.monotonic() + 600
        while not any(t.get("epochs_done") for r in store.list_runs() for t in store.run_trials(r["id"])):
            assert time.monotonic() < deadline and proc.poll() is None, err.read_text()
            time.sleep(0.1)
        server.stop()
        assert proc.wait(600) == 0, err.read_text()
        record = json.loads(out.read_text())
        assert record["status"] == "completed" and record["epochs"] == 3 and record["test_acc"] > 0.5, record
        (line,) = [ln for ln in err.read_text().splitlines() if "the result store stayed unreachable" in ln]
        assert "Traceback" not in err.read_text()
        spilled = line.split(" saved to ")[1].split(";")[0]
        assert spilled.endswith(f"tunelab-unwritten-{record['run_id']}.jsonl")

        server.start()  # same port, same append-only file: epoch 1 is there, the rest is not
        assert [e["epoch"] for e in store.epochs(record["trial_id"])] == [1]
        replay = run_cli("store", "replay", spilled, env=env)
        assert replay.returncode == 0, replay.stderr
        trial = store.get_trial(record["trial_id"])
        assert [e["epoch"] for e in store.epochs(record["trial_id"])] == [1, 2, 3]
        assert trial["status"] == "completed" and trial["test_acc"] == record["test_acc"]
        assert store.get_run(record["run_id"])["status"] == "completed"
        assert store.leaderboard("mnist")[0]["trial_id"] == record["trial_id"]
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
