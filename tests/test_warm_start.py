"""Warm start end to end, on real MNIST with a real store and Ray: a follow-up sweep's searcher holds the earlier
sweep's trials that fit as done, with their results (read back from the searcher state Tune saves with the
experiment), runs none of them again, and a random search says in one line that it ignores them."""

import pickle
from pathlib import Path

import pytest
import yaml

import tunelab
from tests.conftest import in_process
from tunelab.progress import Progress


class Lines(Progress):
    """The API's progress lines, kept."""

    def __init__(self):
        self.lines = []

    def line(self, text: str) -> None:
        self.lines.append(text)


def _recipe(name: str, low: float, algorithm: str = "optuna") -> dict:
    # 1,000 digits, 1 epoch: seconds a trial; the lr range is what the follow-up narrows
    return {"name": name, "dataset": "mnist", "subset": 1000, "budget": {"epochs": 1, "samples": 3},
            "scheduler": {"type": "fifo"}, "search": {"algorithm": algorithm, "seed": 0}, "max_concurrent": 1,
            "top_k_test": 0, "fixed": {"batch_size": 64, "optimizer": "adamw"},
            "space": {"lr": {"loguniform": [low, 0.02]}}}


@pytest.mark.slow
def test_a_follow_up_sweep_starts_from_the_earlier_trials_that_fit(mnist_api_env, tmp_path, monkeypatch,
                                                                   capsys):
    first = tunelab.sweep(_recipe("warm-first", 0.0005))
    assert first.status == "completed"
    store = tunelab.open_store()
    earlier = store.run_trials(first.run_id)
    lrs = sorted(t["params"]["lr"] for t in earlier)
    assert len(lrs) == 3 and all(t["best_val_acc"] is not None for t in earlier), earlier
    low = lrs[1]  # the follow-up's range starts at the middle one: one earlier trial falls outside, two fit
    fits = [t for t in earlier if t["params"]["lr"] >= low]

    lines = Lines()
    second = tunelab.sweep(_recipe("warm-second", low), samples=1, warm_start=[first.run_id], progress=lines)
    assert second.status == "completed"
    said = (f"warm start: 2 earlier trials told to the optuna searcher with their results (warm-first: 2); "
            f"1 did not fit (lr outside loguniform [{low}, 0.02] ×1)")
    assert said in lines.lines, lines.lines
    run = store.get_run(second.run_id)
    assert run["config"]["warm_start"] == [first.run_id] and run["warm_start"] == said

    # the searcher Tune saved with the experiment: the earlier trials that fit, COMPLETE with their results, first
    exp = Path(run["storage_path"]) / "warm-second"
    saved = max(exp.glob("searcher-state-*.pkl"), key=lambda p: p.stat().st_mtime)
    study = pickle.loads(saved.read_bytes())["_ot_study"]
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3  # 2 told + the 1 this sweep ran
    assert [(t.params["lr"], t.value) for t in trials[:2]] == [(t["params"]["lr"], t["best_val_acc"]) for t in fits]
    # ... and none of them is trained again: the sweep's one trial is a new point, what the searcher got back
    new, = store.run_trials(second.run_id)
    assert new["params"]["lr"] not in lrs and low <= new["params"]["lr"] <= 0.02
    assert trials[2].params["lr"] == pytest.approx(new["params"]["lr"])

    # a random search is told nothing, and says so in one line; an unknown run is the store's one-line refusal
    recipe = tmp_path / "random.yaml"
    recipe.write_text(yaml.safe_dump(_recipe("warm-random", 0.0005, algorithm="random")))
    res = in_process(monkeypatch, capsys, mnist_api_env, "sweep", str(recipe), "--samples", "1",
                     "--warm-start", "warm-first")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stderr.count("warm start ignored: the random search does not learn from earlier trials") == 1, res.stderr
    res = in_process(monkeypatch, capsys, mnist_api_env, "sweep", str(recipe), "--name", "warm-nope", "--warm-start", "nope")
    assert res.returncode == 2 and "no sweep named 'nope' in the store" in res.stderr, res.stderr[-2000:]
    assert "warm-nope" not in {r.name for r in tunelab.runs(kind="sweep")}
