"""A user's own images, end to end, as the README tells it: real MNIST digits written out as a folder of PNG files (one
sub-folder per class, named in words), imported with `tunelab data import-folder`, trained with `tunelab train
--dataset NAME` to the accuracy the built-in MNIST reaches with the same recipe, then predicted on, evaluated,
exported, swept and ensembled like any built-in; CIFAR-10 from files in its exact format; the listings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests import fakedata
from tests.conftest import in_process

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# the built-in MNIST recipe spelled out (an imported folder has no recipe of its own), fp32 on every CPU kind
RECIPE = ["--model", "cnn_fast", "--epochs", "2", "--batch-size", "384", "--optimizer", "sgd", "--lr", "0.3",
          "--momentum", "0.9", "--weight-decay", "5e-4", "--schedule", "onecycle", "--warmup-epochs", "0.5",
          "--precision", "fp32"]


def _write_pngs(args) -> None:
    from PIL import Image

    folder, images, labels, start = args
    for i, (img, lab) in enumerate(zip(images, labels)):
        Image.fromarray(img[0]).save(Path(folder) / WORDS[lab] / f"{start + i:05d}.png")


@pytest.fixture(scope="module")
def world(tmp_path_factory, mnist_source, redis_server):
    """Real MNIST imported as the built-in, and all 70,000 of its images written as PNG files in folders."""
    from concurrent.futures import ProcessPoolExecutor

    from tunelab.jobs import data
    from tunelab.jobs.dataset_files import import_dir

    base = tmp_path_factory.mktemp("own")
    root, folder = base / "data", base / "digits"
    import_dir(mnist_source, root)
    raw = data.load("mnist", root)
    jobs = []
    for split, x, y in (("train", raw.train_x, raw.train_y), ("test", raw.test_x, raw.test_y)):
        for w in WORDS:
            (folder / split / w).mkdir(parents=True)
        jobs += [(folder / split, x[i:i + 5000], y[i:i + 5000], i) for i in range(0, len(y), 5000)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_pngs, jobs))
    env = {"TUNELAB_DATA_DIR": str(root), "TUNELAB_REDIS_URL": redis_server.url, "RAY_ADDRESS": "",
           "TUNELAB_STORAGE": str(base / "exp")}
    return {"env": env, "root": root, "folder": folder, "raw": raw}


def _cli(world, monkeypatch, capsys, *args):
    proc = in_process(monkeypatch, capsys, world["env"], *args)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.mark.slow
def test_a_folder_of_digits_trains_like_the_built_in_mnist(world, redis_server, monkeypatch, capsys):
    from redis import Redis

    Redis.from_url(redis_server.url).flushdb()
    imp = _cli(world, monkeypatch, capsys, "data", "import-folder", str(world["folder"]), "--name", "digits",
               "--no-flip", "--json")
    done = json.loads(imp.stdout)
    assert (done["train"], done["test"], done["channels"], done["size"]) == (60_000, 10_000, 1, 28)
    assert done["classes"] == sorted(WORDS) and done["split"] == {"kind": "folders"}
    # the same pixels as the built-in, class by class
    from tunelab.jobs import data

    mine = data.load("digits", world["root"])
    ref = world["raw"]
    seven = sorted(WORDS).index("seven")
    np.testing.assert_array_equal(np.sort(mine.test_x[mine.test_y == seven].reshape(-1, 784), axis=0),
                                  np.sort(ref.test_x[ref.test_y == 7].reshape(-1, 784), axis=0))

    acc = {}
    for ds in ("digits", "mnist"):
        out = _cli(world, monkeypatch, capsys, "train", "--dataset", ds, *RECIPE, "--json")
        rec = json.loads(out.stdout)
        assert rec["status"] == "completed" and rec["dataset"] == ds
        acc[ds] = rec["test_acc"]
    assert acc["mnist"] > 0.98 and abs(acc["digits"] - acc["mnist"]) <= 0.005, acc

    board = json.loads(_cli(world, monkeypatch, capsys, "leaderboard", "--dataset", "digits", "--json").stdout)
    trial = board[0]["trial_id"]
    # predict on one of its PNG files: the folder's class names
    png = sorted((world["folder"] / "test" / "seven").iterdir())[0]
    pred = _cli(world, monkeypatch, capsys, "predict", trial, str(png)).stdout
    assert pred.startswith(f"{png}: seven ") or f"{png}: seven" in pred, pred
    # evaluate re-splits the folder's data as the run did and measures what the run recorded
    ev = json.loads(_cli(world, monkeypatch, capsys, "evaluate", trial, "--json").stdout)
    assert abs(ev["acc"] - acc["digits"]) < 1e-6 and ev["recorded_acc"] == pytest.approx(acc["digits"]), ev
    target = Path(world["env"]["TUNELAB_STORAGE"]) / "digits.safetensors"
    _cli(world, monkeypatch, capsys, "export", trial, "--format", "safetensors", "--out", str(target))
    card = json.loads(Path(str(target) + ".json").read_text())
    assert card["class_names"] == sorted(WORDS) and card["input"]["channels"] == 1


@pytest.mark.slow
def test_a_sweep_recipe_names_the_imported_dataset_and_its_best_trials_ensemble(world, tmp_path, monkeypatch, capsys):
    import tunelab

    for k, v in world["env"].items():
        monkeypatch.setenv(k, v)
    if "digits" not in [d["name"] for d in tunelab.datasets()]:
        tunelab.import_folder(world["folder"], "digits", flip=False)
    recipe = tmp_path / "digits.yaml"
    recipe.write_text("name: digits-sweep\ndataset: digits\nsubset: 2000\nbudget: {samples: 2, epochs: 1}\n"
                      "fixed: {model: cnn_fast, precision: fp32, optimizer: sgd}\n"
                      "space:\n  lr: {choice: [0.05, 0.1]}\n")
    out = _cli(world, monkeypatch, capsys, "sweep", str(recipe), "--json")
    result = json.loads(out.stdout)
    assert result["counts"] == {"completed": 2} and result["best_trial"].startswith(result["run_id"]), result
    ens = _cli(world, monkeypatch, capsys, "ensemble", "digits-sweep", "--top", "2").stdout
    assert "ensemble" in ens and "of 2 trials" in ens
    rows = tunelab.leaderboard("digits", limit=None)
    assert {r.family for r in rows} >= {"cnn", "ensemble"} and sum(r.run_name == "digits-sweep" for r in rows) == 2


@pytest.mark.slow
def test_cifar10_files_in_the_data_root_train_and_are_listed(world, tmp_path, monkeypatch, capsys):
    env = {**world["env"], "TUNELAB_DATA_DIR": str(tmp_path / "data")}
    fakedata.write_cifar10(tmp_path / "data", n_train=600, n_test=200)
    info = json.loads(in_process(monkeypatch, capsys, env, "data", "info", "--json").stdout)
    c10 = next(d for d in info["datasets"] if d["name"] == "cifar10")
    assert (c10["present"], c10["train"], c10["test"], c10["classes"]) == (True, 600, 200, {"fine": 10})
    models = in_process(monkeypatch, capsys, env, "models", "list", "--dataset", "cifar10", "--json")
    recs = {r["name"]: r for r in json.loads(models.stdout)}
    assert recs["resnet20"]["dataset"] == "cifar10" and recs["resnet20"]["params"] == 269_722  # option-A ResNet-20 with 10 classes (akamaster)
    proc = in_process(monkeypatch, capsys, env, "train", "--dataset", "cifar10", "--model", "cnn_bn", "--epochs", "2",
                      "--augment", "auto", "--precision", "fp32", "--json")
    rec = json.loads(proc.stdout)
    assert proc.returncode == 0 and rec["status"] == "completed" and rec["test_acc"] > 0.3, rec  # chance: 0.1
    board = json.loads(in_process(monkeypatch, capsys, env, "leaderboard", "--dataset", "cifar10", "--json").stdout)
    assert [r["trial_id"] for r in board] == [rec["trial_id"]]


@pytest.mark.slow
def test_results_outlive_a_removed_dataset(world, redis_server, monkeypatch, capsys):
    """After `data remove`, the run's results stay: `results import` rebuilds them into an empty store and `predict`
    still names the classes (runs keep an imported dataset's spec in their manifest and checkpoints); what needs the
    images (evaluate) says how to bring them back."""
    import tunelab

    for k, v in world["env"].items():
        monkeypatch.setenv(k, v)
    if "digits" not in [d["name"] for d in tunelab.datasets()]:
        tunelab.import_folder(world["folder"], "digits", flip=False)
    run = json.loads(_cli(world, monkeypatch, capsys, "train", "--dataset", "digits", "--model", "cnn_fast",
                          "--epochs", "1", "--subset", "2000", "--precision", "fp32", "--name", "before-removal",
                          "--json").stdout)
    _cli(world, monkeypatch, capsys, "data", "remove", "digits")
    assert "digits" not in [d["name"] for d in tunelab.datasets()]
    png = sorted((world["folder"] / "test" / "three").iterdir())[0]
    pred = _cli(world, monkeypatch, capsys, "predict", run["trial_id"], str(png), "--json").stdout
    names = {c["name"] for p in json.loads(pred) for c in p["top"]}
    assert names <= set(WORDS) and len(names) == 3, pred
    ev = in_process(monkeypatch, capsys, world["env"], "evaluate", run["trial_id"])
    assert ev.returncode == 2 and "import-folder" in ev.stderr, ev.stderr
    other = {**world["env"], "TUNELAB_REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/3"}
    from redis import Redis

    Redis.from_url(other["TUNELAB_REDIS_URL"]).flushdb()
    imp = in_process(monkeypatch, capsys, other, "results", "import", world["env"]["TUNELAB_STORAGE"])
    assert imp.returncode == 0, imp.stderr
    board = json.loads(in_process(monkeypatch, capsys, other, "leaderboard", "--dataset", "digits", "--json").stdout)
    assert run["trial_id"] in [r["trial_id"] for r in board]
    Redis.from_url(other["TUNELAB_REDIS_URL"]).flushdb()


def test_class_names_with_markup_spaces_and_unicode_are_printed_as_text(tmp_path, redis_server, monkeypatch, capsys):
    """Class folders named like rich markup, HTML, with spaces and unicode: `data import-folder`, `data info` and
    `predict` print them as they are, never as styling."""
    names = ["[red]cat", "<b>dog", "café au lait"]
    files = fakedata.write_image_folder(tmp_path / "odd", {n: 8 for n in names}, size=(16, 16))
    env = {"TUNELAB_DATA_DIR": str(tmp_path / "data"), "TUNELAB_REDIS_URL": redis_server.url, "RAY_ADDRESS": "",
           "TUNELAB_STORAGE": str(tmp_path / "exp")}
    imp = in_process(monkeypatch, capsys, env, "data", "import-folder", str(tmp_path / "odd"), "--name", "odd")
    assert imp.returncode == 0 and all(n in imp.stdout for n in names), imp.stdout
    info = in_process(monkeypatch, capsys, env, "data", "info")
    assert all(n in info.stdout for n in names), info.stdout
    run = in_process(monkeypatch, capsys, env, "train", "--dataset", "odd", "--model", "cnn", "--epochs", "1",
                     "--batch-size", "4", "--precision", "fp32", "--json")
    assert run.returncode == 0, run.stderr
    trial = json.loads(run.stdout)["trial_id"]
    pred = in_process(monkeypatch, capsys, env, "predict", trial, str(files["[red]cat"][0]), "--top-k", "3")
    assert pred.returncode == 0 and all(n in pred.stdout for n in names), pred.stdout
