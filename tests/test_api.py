"""The Python API (`import tunelab`): the README's example as written, typed results, errors as exceptions of one
family that print nothing and exit nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tunelab
from tests.conftest import ROOT


def readme_example() -> str:
    """The README's Python example: the block after its `readme-example` marker."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- readme-example:.*?-->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md lost its Python example (the readme-example marker)"
    return m.group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written_and_produces_leaderboard_rows(mnist_api_env):
    res = subprocess.run([sys.executable, "-c", readme_example()], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **mnist_api_env}, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    train_line, sweep_line = lines[0].split(), lines[1].split()
    assert train_line[0] == "completed" and train_line[1].count("-") == 2, lines[0]
    val, test = float(train_line[3]), float(train_line[5])
    assert val > 0.85 and test > 0.85, lines[0]  # the recipe on 2,700 digits: about 96 %
    assert Path(train_line[6]).is_dir(), lines[0]  # the checkpoint
    assert sweep_line[0] == "completed", lines[1]
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}-\S+", sweep_line[1]) and Path(sweep_line[-1]).is_dir(), lines[1]
    rows = [ln.split() for ln in lines[2:] if ln and ln[0].isdigit()]
    assert rows and rows[0][0] == "1" and rows[0][1] in ("cnn_fast", "cnn", "cnn_bn"), lines
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert lines[-1].startswith("refused: ") and "unknown model 'resnet-9000'" in lines[-1], lines[-1]
    # nothing printed unless asked: none of the CLI's progress lines on stderr
    assert "loading mnist" not in res.stderr and "epoch 1/" not in res.stderr, res.stderr[-2000:]
    # the store has what the API said
    store = tunelab.open_store()
    assert {r.kind for r in tunelab.runs()} == {"train", "sweep"}
    sweep = tunelab.runs(kind="sweep")[0]
    assert sweep.name == "from-python" and sweep.status == "completed"
    assert store.get_trial(sweep.best_trial)["checkpoint"]
    ranked = tunelab.trials("from-python")
    assert ranked[0].id == sweep.best_trial and len(ranked) == 2


def test_api_results_are_typed_and_errors_are_one_family_that_print_nothing(mnist_api_env, capsys):
    with pytest.raises(tunelab.TunelabError, match="unknown model 'resnet-9000'"):
        tunelab.train(dataset="mnist", model="resnet-9000")
    with pytest.raises(tunelab.TunelabError, match="epochs: Input should be greater than or equal to 1"):
        tunelab.train(dataset="mnist", epochs=0)
    with pytest.raises(tunelab.TunelabError, match="no_such_setting: unknown key"):
        tunelab.train(dataset="mnist", no_such_setting=1)
    with pytest.raises(tunelab.InputError, match="MNIST has no coarse labels"):
        tunelab.leaderboard("mnist", "coarse")
    with pytest.raises(tunelab.InputError, match="no sweep named 'nope'"):
        tunelab.resume("nope")
    with pytest.raises(tunelab.InputError, match=r"^samples: Input should be greater than or equal to 1"):
        tunelab.sweep(ROOT / "search_spaces" / "mnist_smoke.yaml", samples=0)
    with pytest.raises(tunelab.TunelabError, match="not valid YAML|expected a mapping"):
        tunelab.sweep(ROOT / "README.md")
    assert tunelab.leaderboard("mnist") == [] and tunelab.runs() == []
    out, err = capsys.readouterr()
    assert out == "" and err == "", (out, err)


def test_train_returns_a_typed_result_that_matches_the_store(mnist_api_env, capsys):
    result = tunelab.train(dataset="mnist", model="cnn", epochs=1, subset=1000, precision="fp32", name="api-run")
    assert isinstance(result, tunelab.TrainResult) and result.ok
    assert result.epochs == 1 and result.runtime["precision"] == "fp32"
    trial = tunelab.open_store().get_trial(result.trial_id)
    assert trial["best_val_acc"] == result.val_acc and trial["test_acc"] == result.test_acc
    assert trial["checkpoint"] == result.checkpoint
    (row,) = tunelab.leaderboard("mnist")
    assert row.trial_id == result.trial_id and row.run_name == "api-run"
    (run,) = tunelab.runs()
    assert run.id == result.run_id and run.kind == "train" and run.status == "completed"
    assert capsys.readouterr() == ("", "")


def test_lazy_names_and_the_registry():
    assert "train" in dir(tunelab) or hasattr(tunelab, "train")
    assert "cnn" in tunelab.models.list_models()
    net = tunelab.models.build("cnn", num_classes=10, in_chans=1, img_size=28)
    assert sum(p.numel() for p in net.parameters()) > 0
    with pytest.raises(AttributeError):
        tunelab.no_such_name  # noqa: B018
