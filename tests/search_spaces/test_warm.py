"""Warm start (`search_spaces.warm`): which earlier trials fit a new sweep, what its searcher is told, and that the
searchers Tune builds from it (`to_tune(spec, warm=...)`) hold those trials as done and learn from their results."""

import pickle

import pytest
import yaml

from tunelab import search_spaces
from tunelab.search_spaces.warm import EarlierRun, EarlierTrial, fit, trained_with, warm_start, within

SPACE = {"lr": {"loguniform": [0.001, 0.1]}, "model": {"choice": ["cnn", "cnn_bn"]}}


def _spec(algorithm="optuna", **over):
    raw = {"name": "t", "dataset": "mnist", "budget": {"epochs": 2, "samples": 2}, "space": SPACE,
           "search": {"algorithm": algorithm, "seed": 0}, **over}
    return search_spaces.SweepSpec.model_validate(raw)


def _recipe(**over) -> dict:
    return _spec("random", **over).model_dump()


def test_values_inside_each_distribution_fit_and_come_back_as_the_sampler_yields_them():
    assert within({"loguniform": [0.001, 0.1]}, 0.001) == 0.001  # bounds are inside
    assert within({"loguniform": [0.001, 0.1]}, 0.1) == 0.1
    assert within({"loguniform": [0.001, 0.1]}, 0.0009) is None
    assert within({"loguniform": [0.001, 0.1]}, 0.5) is None
    assert within({"uniform": [0, 2]}, 1) == 1.0 and isinstance(within({"uniform": [0, 2]}, 1), float)
    assert within({"uniform": [0, 0.2]}, -0.01) is None
    assert within({"qloguniform": [0.0001, 0.01, 0.0001]}, 0.005) == 0.005
    assert within({"qloguniform": [0.0001, 0.01, 0.0001]}, 0.02) is None
    assert within({"randint": [1, 4]}, 3) == 3 and within({"randint": [1, 4]}, 3.0) == 3
    assert within({"randint": [1, 4]}, 4) is None  # randint's high is exclusive, as in Tune
    assert within({"randint": [1, 4]}, 2.5) is None
    assert within({"choice": ["cnn", "cnn_bn"]}, "cnn_bn") == "cnn_bn"
    assert within({"grid": [64, 128]}, 128) == 128 and within({"grid": [64, 128]}, 96) is None
    assert within({"choice": ["cnn", "cnn_bn"]}, "resnet20") is None
    assert within({"choice": [1, 2]}, True) is None and within({"uniform": [0, 2]}, True) is None  # no bools as numbers
    assert within({"loguniform": [0.001, 0.1]}, "0.01") is None and within({"uniform": [0, 1]}, float("nan")) is None


def test_a_trial_fits_when_the_new_sweep_could_have_run_it_as_it_ran():
    spec, old = _spec(space={"lr": {"loguniform": [0.001, 0.01]}, "model": {"choice": ["cnn", "cnn_bn"]}}), _recipe()
    assert fit(spec, {"lr": 0.005, "model": "cnn_bn"}, old) == ({"lr": 0.005, "model": "cnn_bn"}, "")
    assert fit(spec, {"lr": 0.05, "model": "cnn"}, old) == (None, "lr outside loguniform [0.001, 0.01]")
    assert fit(spec, {"lr": 0.005, "model": "cnn_fast"}, old) == (None, "model outside choice ['cnn', 'cnn_bn']")
    # a key the earlier sweep neither sampled nor set (lr None: the optimizer's default) has no value to tell
    no_lr = _recipe(space={"model": {"choice": ["cnn", "cnn_bn"]}})
    assert fit(spec, {"model": "cnn"}, no_lr) == (None, "no value of lr")
    # ... while one it fixed counts with its fixed value
    fixed_lr = _recipe(space={"model": {"choice": ["cnn", "cnn_bn"]}}, fixed={"lr": 0.002})
    assert fit(spec, {"model": "cnn"}, fixed_lr) == ({"lr": 0.002, "model": "cnn"}, "")


def test_settings_outside_the_space_must_match_except_speed_resources_and_seed():
    spec = _spec()
    point = {"lr": 0.01, "model": "cnn"}
    assert fit(spec, point, _recipe(dataset="cifar100")) == (None, "dataset cifar100/fine, here mnist/fine")
    assert fit(spec, point, _recipe(budget={"epochs": 5})) == (None, "epochs 5, here 2")
    assert fit(spec, point, _recipe(subset=1000)) == (None, "subset 1000, here None")
    assert fit(spec, point, _recipe(fixed={"optimizer": "sgd"})) == (None, "optimizer sgd, here adamw")
    # a model the earlier sweep gave its own settings trained with those: not what this sweep trains
    wd = _recipe(overrides={"cnn": {"weight_decay": 0.01}})
    assert fit(spec, point, wd) == (None, "weight_decay 0.01, here 0.0005")
    assert fit(spec, {"lr": 0.01, "model": "cnn_bn"}, wd)[0]
    # a setting the earlier sweep varied and this one fixes must be the fixed value
    fixed_model = _spec(space={"lr": {"loguniform": [0.001, 0.1]}}, fixed={"model": "cnn_bn"})
    assert fit(fixed_model, point, _recipe()) == (None, "model cnn, here cnn_bn")
    assert fit(fixed_model, {"lr": 0.01, "model": "cnn_bn"}, _recipe()) == ({"lr": 0.01}, "")
    # the same result on other resources, with other speed options or another seed: it fits
    other = _recipe(seed=7, resources={"workers": 2, "cpus_per_worker": 1},
                    fixed={"precision": "fp32", "compile": True})
    assert fit(spec, point, other) == (point, "")
    # "auto" as the earlier recipe wrote it and as its canonical policy are the same setting
    assert fit(_spec(fixed={"augment": "crop:2"}), point, _recipe(fixed={"augment": "auto"})) == (point, "")


def test_the_warm_start_counts_what_fit_what_did_not_and_why():
    spec = _spec(space={"lr": {"loguniform": [0.001, 0.01]}, "model": {"choice": ["cnn", "cnn_bn"]}})
    a = EarlierRun(name="first", recipe=_recipe(), trials=[
        EarlierTrial(params={"lr": 0.002, "model": "cnn"}, val_acc=0.91),
        EarlierTrial(params={"lr": 0.05, "model": "cnn"}, val_acc=0.95),  # outside the narrowed range
        EarlierTrial(params={"lr": 0.008, "model": "cnn_bn"}, outcome="diverged", val_acc=0.6),  # told as 0
        EarlierTrial(params={"lr": 0.003, "model": "cnn"}, outcome="unfinished", val_acc=0.5),
        EarlierTrial(params={"lr": 0.004, "model": "cnn"}, val_acc=None),
    ])
    b = EarlierRun(name="longer", recipe=_recipe(budget={"epochs": 4}), trials=[
        EarlierTrial(params={"lr": 0.002, "model": "cnn"}, val_acc=0.97)] * 2)
    w = warm_start(spec, [a, b])
    assert w.points == [{"lr": 0.002, "model": "cnn"}, {"lr": 0.008, "model": "cnn_bn"}]
    assert w.rewards == [0.91, 0.0]
    assert w.given == {"first": 2, "longer": 0} and w.unfit == 3 and w.skipped == 2
    assert w.reasons == {"lr outside loguniform [0.001, 0.01]": 1, "epochs 4, here 2": 2}
    assert w.line() == ("warm start: 2 earlier trials told to the optuna searcher with their results (first: 2, "
                        "longer: 0); 3 did not fit (epochs 4, here 2 ×2; lr outside loguniform [0.001, 0.01] ×1); "
                        "2 without a result left out")
    none = warm_start(spec, [b])
    assert not none.points and none.line().startswith("warm start: no earlier trial fits this sweep (longer: 0)")


@pytest.mark.parametrize("algorithm", ["random", "grid"])
def test_searches_that_do_not_learn_ignore_warm_start_with_a_line(algorithm):
    run = EarlierRun(name="first", recipe=_recipe(),
                     trials=[EarlierTrial(params={"lr": 0.01, "model": "cnn"}, val_acc=0.9)])
    w = warm_start(_spec(algorithm), [run])
    assert not w.points and w.line() == f"warm start ignored: the {algorithm} search does not learn from earlier trials"
    assert search_spaces.to_tune(_spec(algorithm), warm=w).searcher is None


def test_a_sweep_ranked_by_another_metric_or_an_invalid_recipe_is_refused_in_one_line():
    other = EarlierRun(name="by-loss", recipe={**_recipe(), "metric": "val_loss"})
    with pytest.raises(search_spaces.SpecError, match=r"^warm_start: sweep 'by-loss' ranked its trials by val_loss, "
                                                      r"this sweep by val_acc; .*leave it out of warm_start$"):
        warm_start(_spec(), [other])
    broken = EarlierRun(name="old", recipe={**_recipe(), "space": {}})
    with pytest.raises(search_spaces.SpecError, match=r"^warm_start: the recipe of sweep 'old' no longer validates"):
        warm_start(_spec(), [broken])


def test_trained_with_is_what_the_sweep_job_trains():
    from tunelab.jobs.trials import trial_config

    recipe = _recipe(subset=2000, fixed={"optimizer": "sgd", "augment": "auto"},
                     overrides={"cnn_bn": {"lr": 0.02, "weight_decay": 0.001}})
    for sampled in ({"lr": 0.005, "model": "cnn"}, {"lr": 0.005, "model": "cnn_bn"}, {"lr": 0.005}):
        assert trained_with(recipe, sampled)[1] == trial_config(recipe, sampled)


def test_the_recipe_key_is_validated(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text(yaml.safe_dump({"name": "w", "dataset": "mnist", "space": SPACE, "warm_start": ["first", "a1b2"]}))
    assert search_spaces.load(p).warm_start == ["first", "a1b2"]
    p.write_text(yaml.safe_dump({"name": "w", "dataset": "mnist", "space": SPACE, "warm_start": "first"}))
    with pytest.raises(search_spaces.SpecError, match=r"w\.yaml: warm_start: Input should be a valid list"):
        search_spaces.load(p)


def _warm_run(n=30) -> EarlierRun:
    """Earlier trials across lr's whole range where only lr < 0.001 did well."""
    lrs = [10 ** (-4 + 3 * i / (n - 1)) for i in range(n)]
    return EarlierRun(name="first", recipe=_recipe(space={"lr": {"loguniform": [0.0001, 0.1]}}), trials=[
        EarlierTrial(params={"lr": lr}, val_acc=0.99 if lr < 0.001 else 0.5) for lr in lrs])


def _searcher(algorithm, warm):
    """The searcher Tune gets for the recipe, set up as Tune sets it up (metric, mode, the param space)."""
    spec = _spec(algorithm, space={"lr": {"loguniform": [0.0001, 0.1]}}, max_concurrent=10)
    setup = search_spaces.to_tune(spec, warm=warm_start(spec, [warm]) if warm else None)
    setup.searcher.set_search_properties(spec.metric, spec.mode, setup.param_space)
    return setup.searcher


def test_optuna_holds_the_earlier_trials_as_complete_with_their_results():
    from optuna.trial import TrialState

    run = _warm_run()
    study = _searcher("optuna", run).searcher._ot_study
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 30
    assert [t.params["lr"] for t in study.trials] == pytest.approx([t.params["lr"] for t in run.trials])
    assert [t.value for t in study.trials] == [t.val_acc for t in run.trials]


def test_hyperopt_holds_the_earlier_trials_as_done_and_restores_them(tmp_path):
    from hyperopt import base

    run = _warm_run()
    searcher = _searcher("hyperopt", run)
    inner = searcher.searcher
    assert type(inner).__name__ == "WarmHyperOptSearch"
    docs = inner._hpopt_trials.trials
    assert [d["state"] for d in docs] == [base.JOB_STATE_DONE] * 30
    assert [d["misc"]["vals"]["lr"][0] for d in docs] == pytest.approx([t.params["lr"] for t in run.trials])
    assert [d["result"]["loss"] for d in docs] == [-t.val_acc for t in run.trials]  # HyperOpt minimises
    first = searcher.suggest("new-1")
    assert first and inner._live_trial_mapping["new-1"][0] == 30  # a new trial, not one of the told ones
    # Tune saves the searcher with the experiment; a resumed sweep restores it with what it was told
    inner.save(str(tmp_path / "searcher.pkl"))
    again = _searcher("hyperopt", None).searcher
    again.restore(str(tmp_path / "searcher.pkl"))
    assert len(again._hpopt_trials.trials) == 31
    told = [{"loss": -t.val_acc, "status": "ok"} for t in run.trials]
    assert [d["result"] for d in again._hpopt_trials.trials[:30]] == told
    assert pickle.loads(pickle.dumps(run)) == run


@pytest.mark.parametrize("algorithm", ["optuna", "hyperopt"])
def test_a_warm_searcher_learns_from_the_results_it_was_told(algorithm):
    # Told that only lr < 0.001 did well, the searcher proposes there; without warm start it samples the whole range
    # (seeded: the same proposals every run). 30 told trials pass both searchers' random start (Optuna 10, HyperOpt 20).
    warm, cold = _searcher(algorithm, _warm_run()), _searcher(algorithm, None)
    warm_lrs = [warm.suggest(f"w{i}")["lr"] for i in range(10)]
    cold_lrs = [cold.suggest(f"c{i}")["lr"] for i in range(10)]
    assert sum(lr < 0.001 for lr in warm_lrs) >= 8, warm_lrs
    assert sum(lr < 0.001 for lr in cold_lrs) <= 4, cold_lrs


@pytest.mark.parametrize("algorithm", ["optuna", "hyperopt"])
def test_a_follow_up_does_not_draw_the_earlier_sweeps_random_points_again(algorithm):
    # Both searchers start at random; a follow-up with the recipe's seed would repeat the earlier sweep's first draws
    first = [_searcher(algorithm, None).suggest("a")["lr"] for _ in range(2)]
    assert first[0] == first[1]  # the same seed draws the same first point
    told = _warm_run(3)
    assert _searcher(algorithm, told).suggest("a")["lr"] != first[0]
    # reproducible: the same earlier trials, the same seed
    assert _searcher(algorithm, told).suggest("a")["lr"] == _searcher(algorithm, told).suggest("a")["lr"]
