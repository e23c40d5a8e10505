"""A recipe in Tune's terms (`search_spaces.to_tune`): its search space, scheduler and searcher; loading a recipe
does not import Ray."""

import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT
from tunelab import search_spaces


def _spec(tmp_path, **over):
    raw = {"name": "t", "dataset": "mnist", "budget": {"epochs": 4, "samples": 2},
           "space": {"lr": {"loguniform": [0.001, 0.1]}, "model": {"choice": ["cnn", "cnn_bn"]}}, **over}
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(raw))
    return search_spaces.load(p)


def test_loading_a_recipe_imports_no_ray():
    code = ("import sys; from tunelab import search_spaces; search_spaces.load('search_spaces/mnist_smoke.yaml'); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("scheduler,cls", [("fifo", "FIFOScheduler"), ("asha", "AsyncHyperBandScheduler"),
                                           ("hyperband", "HyperBandScheduler"), ("pbt", "PopulationBasedTraining")])
def test_each_scheduler(tmp_path, scheduler, cls):
    mutations = {"hyperparam_mutations": {"lr": {"loguniform": [0.001, 0.1]}}} if scheduler == "pbt" else {}
    setup = search_spaces.to_tune(_spec(tmp_path, scheduler={"type": scheduler, **mutations}))
    assert isinstance(setup, search_spaces.TuneSetup) and type(setup.scheduler).__name__ == cls
    assert setup.searcher is None  # random search: Tune's own variant generator


def test_grid_search_expands_choices_and_model_based_searchers_are_limited(tmp_path):
    from ray.tune.search.sample import Categorical, Float

    grid = search_spaces.to_tune(_spec(tmp_path, search={"algorithm": "grid"})).param_space
    assert grid["model"] == {"grid_search": ["cnn", "cnn_bn"]} and isinstance(grid["lr"], Float)
    random = search_spaces.to_tune(_spec(tmp_path)).param_space
    assert isinstance(random["model"], Categorical)
    optuna = search_spaces.to_tune(_spec(tmp_path, search={"algorithm": "optuna"}, max_concurrent=3)).searcher
    assert type(optuna).__name__ == "ConcurrencyLimiter" and optuna.max_concurrent == 3
