"""Trained models put to use, end to end through the CLI and the Python API (tunelab.deploy), with a real MNIST run and
a real sweep in a fresh data root and the embedded store: export with a model card, evaluate again, predict image
files, ensemble a sweep's best trials onto the leaderboard; each bad input one line, exit 2, nothing written."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import tunelab
from tests import fakedata
from tests.conftest import ROOT, in_process
from tests.jobs.test_export import _training_top1
from tunelab import deploy
from tunelab.jobs import data, dataset_files, datasets
from tunelab.jobs.inference import load_trial_model
from tunelab.results import embedded

N_CHECK = 100


@pytest.fixture(scope="module")
def env(tmp_path_factory, mnist_source):
    """A user's data root with real MNIST (and a CIFAR-100-format folder), the embedded store, no cluster."""
    root = tmp_path_factory.mktemp("deploy") / "data"
    dataset_files.import_dir(mnist_source, root)
    fakedata.write_cifar100(root, n_train=2000, n_test=100)  # every fine class in train: its coarse class known
    values = {"TUNELAB_DATA_DIR": str(root), "TUNELAB_REDIS_URL": "", "RAY_ADDRESS": "", "TUNELAB_STORAGE": ""}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in values.items():
            mp.setenv(k, v)
        yield values
        from tunelab.cluster import disconnect

        disconnect()
        embedded.stop(root)


@pytest.fixture(scope="module")
def trained(env):
    """The MNIST recipe (cnn_fast, 2 epochs) on 3,000 real digits: about 96 % test accuracy."""
    result = tunelab.train(dataset="mnist", subset=3000, precision="fp32", name="deploy-run")
    assert result.ok, result.error
    return result


@pytest.fixture(scope="module")
def swept(env):
    """A real sweep of 3 trials (1 epoch on 1,000 digits each, no early stopping)."""
    spec = yaml.safe_load((ROOT / "search_spaces" / "mnist_smoke.yaml").read_text())
    spec.update(name="deploy-sweep", subset=1000, budget={"epochs": 1, "samples": 3}, scheduler={"type": "fifo"},
                fixed={**spec["fixed"], "batch_size": 32, "precision": "fp32"})
    result = tunelab.sweep(spec)
    assert result.ok and result.counts == {"completed": 3}, result
    return result


def cli(monkeypatch, capsys, env, *args):
    return in_process(monkeypatch, capsys, env, *args)


def one_line_refusal(res, match: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback, nothing on stdout."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def data_root(env) -> Path:
    return Path(env["TUNELAB_DATA_DIR"])


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_export_writes_each_format_with_its_card_and_the_files_predict_as_the_checkpoint(env, trained, tmp_path,
                                                                                         monkeypatch, capsys):
    import onnxruntime as ort

    trial = tunelab.open_store().get_trial(trained.trial_id)
    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt"), ("safetensors", "m.safetensors")):
        res = cli(monkeypatch, capsys, env, "export", trained.trial_id, "--format", fmt, "--out", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"wrote {tmp_path / name} ({fmt}, ") and f"{name}.json" in res.stdout
        card = json.loads((tmp_path / f"{name}.json").read_text())
        assert card["format"] == fmt and card["model"] == "cnn_fast" and card["family"] == "cnn"
        assert card["class_names"] == [str(d) for d in range(10)] and card["num_classes"] == 10
        assert card["input"]["channels"] == 1 and card["input"]["size"] == 28 and card["input"]["range"] == [0.0, 1.0]
        assert card["input"]["mean"] == [0.1307] and card["input"]["std"] == [0.3081]
        assert ("inside the graph" in card["input"]["normalisation"]) == (fmt != "safetensors")
        assert card["metrics"]["test_acc"] == trial["test_acc"] and card["metrics"]["val_acc"] == trial["best_val_acc"]
        assert card["trial_id"] == trained.trial_id and card["run_id"] == trained.run_id
        assert card["run_name"] == "deploy-run" and card["tunelab_version"] == tunelab.__version__
        assert card["config"]["subset"] == 3000 and card["config"]["model"] == "cnn_fast" and card["params"] > 0

    # 100 real test digits: the exported graphs (raw [0, 1] images in) pick the checkpoint's classes
    tm = load_trial_model(trained.checkpoint, trained.trial_id)
    x = data.load("mnist", data_root(env)).test_x[:N_CHECK]
    _, want = _training_top1(tm, x)
    raw = (torch.as_tensor(x).float() / 255).numpy()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(["logits"], {"images": raw})[0].argmax(1), want.numpy())
    with torch.inference_mode():
        scripted = torch.jit.load(str(tmp_path / "m.pt"))
        assert torch.equal(scripted(torch.as_tensor(raw)).argmax(1), want)

    # the Python API: the default name is TRIAL.onnx here
    monkeypatch.chdir(tmp_path)
    path = deploy.export(trained.trial_id)
    assert path == tmp_path / f"{trained.trial_id}.onnx" and path.with_name(path.name + ".json").is_file()


def test_evaluate_reproduces_the_recorded_test_and_validation_accuracy(env, trained, monkeypatch, capsys):
    store = tunelab.open_store()
    trial = store.get_trial(trained.trial_id)
    res = cli(monkeypatch, capsys, env, "evaluate", trained.trial_id, "--split", "test", "--json")
    assert res.returncode == 0, res.stderr
    test = json.loads(res.stdout)
    assert test["split"] == "test" and test["images"] == 3000 and test["epoch"] == 2
    assert test["recorded_acc"] == trial["test_acc"] and abs(test["acc"] - trial["test_acc"]) <= 0.0005

    val = deploy.evaluate(trained.trial_id, split="val")
    checkpoint_epoch = store.epochs(trained.trial_id)[-1]  # the checkpoint is the last epoch's
    assert val.images == 300 and val.recorded_acc == checkpoint_epoch["val_acc"]
    assert abs(val.acc - checkpoint_epoch["val_acc"]) <= 0.0005
    if trial["best_epoch"] == 2:
        assert abs(val.acc - trial["best_val_acc"]) <= 0.0005

    res = cli(monkeypatch, capsys, env, "evaluate", trained.trial_id, "--split", "val")
    assert res.returncode == 0 and res.stdout.startswith(f"trial {trained.trial_id} at epoch 2 on val: ")
    assert "difference +0.00 points" in res.stdout


def test_predict_names_the_digits_of_real_test_images_saved_as_png(env, trained, tmp_path, monkeypatch, capsys):
    raw = data.load("mnist", data_root(env))
    tm = load_trial_model(trained.checkpoint, trained.trial_id)
    _, ref = _training_top1(tm, raw.test_x[:20])
    paths = []
    for i in range(20):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(raw.test_x[i, 0]).save(paths[-1])
    right = [i for i in range(20) if ref[i] == raw.test_y[i]]
    assert len(right) >= 15, "the recipe on 3,000 digits should get most of them right"

    preds = deploy.predict(trained.trial_id, paths, top_k=3)
    assert [int(p.top[0].name) for p in preds] == ref.tolist()  # the file path gives the checkpoint's own answer
    for p in preds:
        probs = [c.probability for c in p.top]
        assert len(p.top) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6

    res = cli(monkeypatch, capsys, env, "predict", trained.trial_id, *[str(paths[i]) for i in right[:5]])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 5
    for i, line in zip(right[:5], lines):
        name, shown = line.split(": ", 1)
        assert name == str(paths[i]) and shown.split()[0] == str(int(raw.test_y[i])), line
        assert len(shown.split(", ")) == 3

    res = cli(monkeypatch, capsys, env, "predict", trained.trial_id, str(paths[right[0]]), "--top-k", "1", "--json")
    (pred,) = json.loads(res.stdout)
    assert pred["top"][0]["name"] == str(int(raw.test_y[right[0]])) and len(pred["top"]) == 1


def a_train_run(store) -> str:
    """A training run's id, for refusals: the fixture's own (a run that is not a sweep)."""
    return next(r["id"] for r in store.list_runs() if r["kind"] == "train")


def test_ensemble_of_a_sweeps_best_trials_lands_on_the_leaderboard_once(env, trained, swept, tmp_path, monkeypatch,
                                                                         capsys):
    store = tunelab.open_store()
    ranked = [t for t in store.run_trials(swept.run_id)]
    assert len(ranked) == 3
    res = cli(monkeypatch, capsys, env, "ensemble", "deploy-sweep", "--top", "3", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["members"] == [t["id"] for t in ranked]  # best validation accuracy first
    assert r["sweep"] == swept.run_id and r["model"] == "ensemble-top3" and r["name"] == "deploy-sweep-top3"
    assert r["val_images"] == 100 and r["test_images"] == 1000 and 0 < r["val_acc"] <= 1

    def ensemble_rows():
        return [row for row in tunelab.leaderboard("mnist", limit=None) if row.family == "ensemble"]

    (row,) = ensemble_rows()
    assert row.trial_id == r["trial_id"] and row.run_id == r["run_id"] and row.kind == "ensemble"
    assert row.val_acc == r["val_acc"] and row.test_acc == r["test_acc"] and row.model == "ensemble-top3"
    assert row.n_params == sum(store.get_trial(t)["n_params"] for t in r["members"])
    assert store.get_run(swept.run_id)["best_trial"] == ranked[0]["id"]  # the sweep's own record is untouched
    assert store.get_trial(r["trial_id"])["params"]["members"] == r["members"]

    # the recorded figures are reproducible: evaluate the ensemble trial
    again_test = deploy.evaluate(r["trial_id"], split="test")
    assert again_test.members == r["members"] and abs(again_test.acc - r["test_acc"]) <= 0.0005
    assert abs(deploy.evaluate(r["trial_id"], split="val").acc - r["val_acc"]) <= 0.0005

    # an ensemble predicts too: its members' softmax averaged
    digit = tmp_path / "digit.png"
    Image.fromarray(data.load("mnist", data_root(env)).test_x[0, 0]).save(digit)
    (pred,) = deploy.predict(r["trial_id"], [digit], top_k=2)
    assert len(pred.top) == 2 and pred.top[0].probability >= pred.top[1].probability > 0

    # re-running replaces, it does not add a row; a top 2 is an ensemble of its own
    res = cli(monkeypatch, capsys, env, "ensemble", swept.run_id, "--top", "3")
    assert res.returncode == 0 and res.stdout.startswith(f"ensemble deploy-sweep-top3 ({r['trial_id']}) of 3 trials")
    (row,) = ensemble_rows()
    assert row.trial_id == r["trial_id"] and len(store.run_trials(r["run_id"])) == 1
    two = deploy.ensemble("deploy-sweep", top=2)
    assert two.members == r["members"][:2] and len(ensemble_rows()) == 2

    # too many, too few, and a run that is not a sweep: one line each, the store as it was
    before = store.get_trial(r["trial_id"])
    one_line_refusal(cli(monkeypatch, capsys, env, "ensemble", "deploy-sweep", "--top", "4"),
                     "sweep deploy-sweep has 3 finished trial(s) with checkpoints, fewer than --top 4; use --top 3")
    one_line_refusal(cli(monkeypatch, capsys, env, "ensemble", "deploy-sweep", "--top", "1"), "at least 2 trials")
    one_line_refusal(cli(monkeypatch, capsys, env, "ensemble", r["run_id"]), "is not a sweep (its kind: ensemble)")
    one_line_refusal(cli(monkeypatch, capsys, env, "ensemble", a_train_run(store)), "(its kind: train)")
    one_line_refusal(cli(monkeypatch, capsys, env, "ensemble", "no-such-sweep"), "no sweep named 'no-such-sweep'")
    assert store.get_trial(r["trial_id"]) == before and len(ensemble_rows()) == 2
    one_line_refusal(cli(monkeypatch, capsys, env, "export", r["trial_id"]), "is an ensemble: it has no weights")


def _fake_trial(store, trial_id: str, checkpoint=None, dataset="mnist") -> None:
    from tunelab.jobs.config import make_config
    from tunelab.jobs.trials import trial_record

    cfg = make_config(dataset=dataset, model="cnn")
    run_id = trial_id.rsplit("-", 1)[0]
    store.start_run(run_id, kind="train", name=run_id, dataset=dataset, labels="fine", config=cfg.model_dump())
    store.start_trial(trial_id, run_id=run_id, params={}, **trial_record(cfg))
    if checkpoint:
        store.set_checkpoint(trial_id, str(checkpoint))


def test_bad_input_is_one_line_exit_2_and_nothing_is_written(env, trained, tmp_path, monkeypatch, capsys):
    store = tunelab.open_store()
    out = tmp_path / "out"
    out.mkdir()
    _fake_trial(store, "bad-none-t0")
    _fake_trial(store, "bad-gone-t0", tmp_path / "deleted-checkpoint")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "checkpoint.pt").write_bytes(b"\x00" * 100)
    _fake_trial(store, "bad-garbage-t0", garbage)
    (tmp_path / "notes.png").write_text("not an image")
    digit = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit)
    m = str(out / "m.onnx")
    t = trained.trial_id
    cases = [
        (("export", "no-such-trial", "--out", m), "no trial 'no-such-trial' in the store"),
        (("evaluate", "no-such-trial"), "no trial 'no-such-trial' in the store"),
        (("predict", "no-such-trial", str(digit)), "no trial 'no-such-trial' in the store"),
        (("export", "bad-none-t0", "--out", m), "trial bad-none-t0 has no checkpoint"),
        (("export", "bad-gone-t0", "--out", m), "checkpoint folder " + str(tmp_path / "deleted-checkpoint") + " is gone"),
        (("evaluate", "bad-gone-t0"), "is gone (deleted or moved)"),
        (("export", "bad-garbage-t0", "--out", m), "trial bad-garbage-t0: checkpoint "),
        (("export", t, "--format", "tflite", "--out", m), "unknown export format 'tflite'"),
        (("export", t, "--out", str(out)), "is a folder; give a file path"),
        (("export", t, "--out", str(out / "no" / "m.onnx")), "does not exist; create it"),
        (("predict", t, str(tmp_path / "notes.png")), "notes.png is not a readable image"),
        (("predict", t, str(tmp_path / "missing.png")), "missing.png: no such file"),
        (("predict", t, str(digit), "--top-k", "11"), "--top-k 11 is more than the model's 10 classes"),
        (("evaluate", t, "--split", "train"), "unknown split 'train'; choose val or test"),
    ]
    for args, match in cases:
        one_line_refusal(cli(monkeypatch, capsys, env, *args), match)
    assert list(out.iterdir()) == []


def test_a_cifar_model_card_names_fine_and_coarse_classes(env, tmp_path):
    from tunelab import models
    from tunelab.jobs.config import make_config
    from tunelab.jobs.loop import save_checkpoint

    cfg = make_config(dataset="cifar100", model="cnn", epochs=1)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    net = models.build("cnn", num_classes=100, in_chans=3, img_size=32)
    save_checkpoint({"model": net.state_dict(), "config": cfg.model_dump(), "epoch": 0, "history": []}, folder)
    _fake_trial(tunelab.open_store(), "cifar-run-t0", folder, dataset="cifar100")
    path = deploy.export("cifar-run-t0", format="safetensors", out=tmp_path / "c.safetensors")
    card = json.loads(path.with_name("c.safetensors.json").read_text())
    assert card["class_names"] == [f"fine_{i:02d}" for i in range(100)]
    assert card["coarse_names"] == [f"coarse_{i:02d}" for i in range(20)]
    assert card["fine_to_coarse"] == fakedata.fine_to_coarse().tolist()
    assert card["input"]["channels"] == 3 and card["input"]["size"] == 32
    assert card["input"]["mean"] == list(datasets.get("cifar100").mean)
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(tmp_path / "photo.jpg")
    (pred,) = deploy.predict("cifar-run-t0", [tmp_path / "photo.jpg"], top_k=5)
    assert len(pred.top) == 5 and all(c.name == f"fine_{c.index:02d}" for c in pred.top)
