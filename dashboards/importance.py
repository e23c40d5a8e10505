"""Parameter importance of a sweep: how much each searched parameter mattered for validation accuracy, computed with
Optuna's evaluators from the trials in the store — so it works for every sweep that ever ran, whatever searched it.

Each trial becomes an Optuna `FrozenTrial` (its searched params, in distributions built from the recipe's `space`, and
its best validation accuracy as the value) in an in-memory study; `optuna.importance.get_param_importances` does the
rest. Optuna is imported when an importance is asked for, not with the dashboard.

How many trials it takes (`MIN_TRIALS`):

- **PED-ANOVA** (the default) compares where the best trials sit with where all of them sit (kernel density
  estimates). Its "top" is the best 10 % of the trials (Optuna's default), widened to at least 25 and capped at half of
  them: in a sweep under 50 trials, the better half against all. A smaller top lets noise win: the density of a handful
  of points spikes wherever they happen to fall, so a continuous parameter that does nothing scores high, while a
  categorical one's score is capped (a two-way choice at 1). On synthetic sweeps of 24–48 trials driven by a two-way
  choice, a top of 5 ranked a noise parameter first in 15–19 of 30 seeds, a top of half the trials in 0–2. It
  needs at least 6 trials, so that the top holds at least 3: Optuna drops a regime of fewer than 2, and two points
  are no distribution.
- **fANOVA** fits a random forest (64 trees, seed 0) from params to accuracy and splits its variance by parameter.
  Each tree is grown on a bootstrap sample of the trials: under 10 trials a tree sees a handful of distinct points,
  and the split says more about which points it drew than about the parameters, so it needs 10 (even at 10–12 it
  ranked a noise parameter first in a few of 30 synthetic sweeps; the note calls anything under 20 a rough guide).

Trials with a validation accuracy count; failed ones without one are left out. Trials that ended short of the budget
(stopped early by ASHA or Hyperband, failed after a result, still running) count at the best epoch they reached
(`early_stopped="reached"`, the default) or are left out (`"exclude"`). The result says which, and how many.
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from typing import Any, Optional

from tunelab.dashboards.schemas import Importance, ParamImportance
from tunelab.dashboards.views import ViewError

EVALUATORS = {"ped-anova": "PED-ANOVA", "fanova": "fANOVA"}  # name -> how it is written in prose
POLICIES = ("reached", "exclude")
MIN_TRIALS = {"ped-anova": 6, "fanova": 10}
PED_ANOVA_TOP, PED_ANOVA_TOP_MIN = 0.1, 25
ROUGH_BELOW = 20  # fewer trials than this: the note says the ranking is a rough guide
METRIC = "best_val_acc"
FANOVA_SEED = 0

# Optuna's logging level and the warnings filters are process-wide: one computation at a time changes them.
_QUIET = threading.Lock()


def check_choices(evaluator: str, early_stopped: str) -> None:
    """ViewError naming the choices when `evaluator` or `early_stopped` is not one of them."""
    if evaluator not in EVALUATORS:
        raise ViewError(f"unknown importance evaluator {evaluator!r}; choose one of: {', '.join(EVALUATORS)}")
    if early_stopped not in POLICIES:
        raise ViewError(f"unknown early-stopped policy {early_stopped!r}; choose reached (count them at the epoch "
                        f"they reached) or exclude (leave them out)")


def ped_anova_top(n: int) -> int:
    """How many of `n` trials PED-ANOVA takes as the top: the best 10 %, at least 25, at most half."""
    return min(max(math.ceil(PED_ANOVA_TOP * n), PED_ANOVA_TOP_MIN), n // 2)


def sweep_importance(store, run_id: str, evaluator: str = "ped-anova",
                     early_stopped: str = "reached") -> Optional[Importance]:
    """The importance of each searched parameter of the sweep `run_id`, most important first; None if there is no
    such run. ViewError (one line) for a run that is not a sweep, too few trials, or a bad choice."""
    check_choices(evaluator, early_stopped)
    run = store.get_run(run_id)
    if run is None:
        return None
    return compute(run, store.run_trials(run_id), evaluator, early_stopped)


def cache_key(run: dict, trials: list[dict]) -> tuple:
    """What an importance depends on, for a cache: the run and each trial's status, params and result."""
    return (run.get("id"), run.get("status"),
            tuple((t.get("id"), t.get("status"), t.get("epochs_done"), t.get("best_val_acc"),
                   json.dumps(t.get("params") or {}, sort_keys=True, default=str)) for t in trials))


def compute(run: dict, trials: list[dict], evaluator: str = "ped-anova", early_stopped: str = "reached") -> Importance:
    """The importance from a run record and its trial records (as the store returns them)."""
    check_choices(evaluator, early_stopped)
    name = run.get("name") or run.get("id")
    if run.get("kind") != "sweep":
        what = {"train": "a training run"}.get(run.get("kind"), f"a {run.get('kind') or 'plain'} run")
        raise ViewError(f"run {run.get('id')!r} is {what}, not a sweep: parameter importance needs a sweep's trials; "
                        f"see `tunelab sweep list`")
    config = run.get("config") or {}
    space = config.get("space") or {}
    if not isinstance(space, dict) or not space:
        raise ViewError(f"sweep {name!r} records no search space (config.space): nothing to rank; re-import it with "
                        f"`tunelab results import DIR` if its experiment folder is still there")
    epochs = (config.get("budget") or {}).get("epochs")
    dists = {key: _distribution(key, sampler) for key, sampler in space.items()}
    picked, left_out, short_used = _pick(trials, dists, early_stopped)
    need = MIN_TRIALS[evaluator]
    if len(picked) < need:
        raise ViewError(_too_few(name, evaluator, len(picked), left_out, early_stopped))
    values = [acc for _, acc in picked]
    if max(values) - min(values) <= 0:
        raise ViewError(f"all {len(picked)} trials of sweep {name!r} reached the same validation accuracy "
                        f"({100 * values[0]:.2f}%): nothing tells the parameters apart; run trials that differ")
    if len(dists) == 1:
        scores = {next(iter(dists)): 1.0}
    else:
        scores = _evaluate(picked, dists, evaluator)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return Importance(
        run_id=run["id"], evaluator=evaluator, metric=METRIC, early_stopped=early_stopped, trials_used=len(picked),
        trials_left_out=sum(left_out.values()), early_stopped_used=short_used, left_out=left_out,
        importances=[ParamImportance(param=k, importance=round(v, 6)) for k, v in ranked],
        note=_note(evaluator, len(picked), short_used, left_out, epochs, len(dists)),
    )


# ------------------------------------------------------------------------------------------ the recipe's space


def _distribution(key: str, sampler: Any) -> dict:
    """A recipe sampler as a plain description Optuna's distribution is built from once the values are seen:
    {"kind": "categorical", "choices": [...]} or {"kind": "float"|"int", "low", "high", "log"}."""
    if not isinstance(sampler, dict) or len(sampler) != 1:  # a bare list is a choice, as Tune reads it
        return {"kind": "categorical", "choices": list(sampler) if isinstance(sampler, list) else [sampler]}
    (kind, args), = sampler.items()
    if kind in ("choice", "grid"):
        return {"kind": "categorical", "choices": list(args)}
    if kind in ("uniform", "loguniform", "qloguniform"):
        return {"kind": "float", "low": float(args[0]), "high": float(args[1]), "log": kind != "uniform"}
    if kind == "randint":  # Tune's randint excludes its upper end
        return {"kind": "int", "low": int(args[0]), "high": int(args[1]) - 1, "log": False}
    raise ViewError(f"search space key {key!r} has an unknown sampler {kind!r}; importance reads choice, grid, "
                    f"uniform, loguniform, qloguniform and randint")


def _categorical(v: Any) -> Any:
    """A choice as Optuna keeps it (None, bool, int, float or str): anything else as its JSON."""
    return v if v is None or isinstance(v, (bool, int, float, str)) else json.dumps(v, sort_keys=True, default=str)


def _fits(v: Any, d: dict) -> bool:
    if d["kind"] == "categorical":
        return True
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return False
    if d["kind"] == "int" and not float(v).is_integer():
        return False
    return not d["log"] or v > 0


def _pick(trials: list[dict], dists: dict, early_stopped: str) -> tuple[list[tuple[dict, float]], dict, int]:
    """The trials that count, as (searched params, best validation accuracy); why the others were left out, by
    reason; how many counted trials ended short of the budget."""
    picked, short_used = [], 0
    left_out = {"early_stopped": 0, "no_result": 0, "params_outside_space": 0}
    for t in trials:
        acc = t.get("best_val_acc")
        if not isinstance(acc, (int, float)) or not math.isfinite(acc):
            left_out["no_result"] += 1
            continue
        params = t.get("params") or {}
        if any(k not in params or not _fits(params[k], d) for k, d in dists.items()):
            left_out["params_outside_space"] += 1
            continue
        if t.get("status") != "completed":  # stopped early, failed after a result, still running
            if early_stopped == "exclude":
                left_out["early_stopped"] += 1
                continue
            short_used += 1
        picked.append(({k: params[k] for k in dists}, float(acc)))
    return picked, {k: v for k, v in left_out.items() if v}, short_used


# ------------------------------------------------------------------------------------------ Optuna


def _optuna_distributions(picked: list[tuple[dict, float]], dists: dict) -> dict:
    """Optuna distributions for the recipe's space, widened to every value the trials hold (PBT perturbs values past
    the recipe's range; an older recipe may have had other choices)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for key, d in dists.items():
        seen = [p[key] for p, _ in picked]
        if d["kind"] == "categorical":
            choices = [_categorical(c) for c in d["choices"]]
            choices += [v for v in dict.fromkeys(_categorical(s) for s in seen) if v not in choices]
            out[key] = CategoricalDistribution(list(dict.fromkeys(choices)))
        elif d["kind"] == "int":
            out[key] = IntDistribution(min([d["low"], *map(int, seen)]), max([d["high"], *map(int, seen)]))
        else:
            out[key] = FloatDistribution(min([d["low"], *seen]), max([d["high"], *seen]), log=d["log"])
    return out


def _evaluate(picked: list[tuple[dict, float]], dists: dict, evaluator: str) -> dict[str, float]:
    import optuna

    distributions = _optuna_distributions(picked, dists)

    def cast(key, v):
        d = dists[key]
        return _categorical(v) if d["kind"] == "categorical" else int(v) if d["kind"] == "int" else float(v)

    with _QUIET:
        level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # "A new study created in memory …"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-argument and small-sample warnings: the note says it
                study = optuna.create_study(direction="maximize")
                study.add_trials([optuna.trial.create_trial(
                    params={k: cast(k, v) for k, v in params.items()}, distributions=distributions, value=acc)
                    for params, acc in picked])
                if evaluator == "fanova":
                    ev = optuna.importance.FanovaImportanceEvaluator(seed=FANOVA_SEED)
                else:
                    n = len(picked)
                    # Optuna takes the best ceil(q·n) trials: q a half-trial under top/n lands on `top` exactly
                    ev = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=(ped_anova_top(n) - 0.5) / n,
                                                                       region_quantile=1.0)
                scores = optuna.importance.get_param_importances(study, evaluator=ev)
        finally:
            optuna.logging.set_verbosity(level)
    return {k: float(scores.get(k, 0.0)) for k in dists}


# ------------------------------------------------------------------------------------------ what it says


def _left_out_words(left_out: dict) -> str:
    words = {"early_stopped": "ended short of the budget", "no_result": "without a validation result",
             "params_outside_space": "with params outside the recorded search space"}
    return ", ".join(f"{n} {words[k]}" for k, n in left_out.items())


def _note(evaluator: str, used: int, short_used: int, left_out: dict, epochs: Optional[int], n_params: int) -> str:
    """One paragraph for the page and the CLI: the evaluator, what counted, what was left out and why."""
    budget = f"the {epochs}-epoch budget" if epochs else "the budget"
    how = EVALUATORS[evaluator]
    if n_params == 1:
        how = "The only searched parameter (importance 1)"
    elif evaluator == "ped-anova":
        how += f" (the best {ped_anova_top(used)} trials against all {used})"
    else:
        how += f" (a random forest of the {used} trials, seed {FANOVA_SEED})"
    text = f"{how} on each trial's best validation accuracy; {used - short_used} trials ran {budget}"
    if short_used:
        text += (f", {short_used} ended short of it (early-stopped, failed or still running) and count at the best "
                 f"epoch they reached")
    elif left_out.get("early_stopped"):
        text += "; trials that ended short of it (early-stopped, failed or still running) are left out"
    text += "."
    if left_out:
        text += f" Left out: {_left_out_words(left_out)}."
    if used < ROUGH_BELOW and n_params > 1:
        text += f" Fewer than {ROUGH_BELOW} trials: take the ranking as a rough guide."
    return text


def _too_few(name: str, evaluator: str, n: int, left_out: dict, early_stopped: str) -> str:
    need = MIN_TRIALS[evaluator]
    why = {"ped-anova": "so that its top holds at least 3", "fanova": "for its random forest"}[evaluator]
    text = (f"too few trials for parameter importance: {EVALUATORS[evaluator]} needs at least {need} with a validation "
            f"accuracy ({why}), sweep {name!r} has {n}")
    if left_out.get("early_stopped") and early_stopped == "exclude":
        text += f" ({left_out['early_stopped']} more ended short of the budget: count them at the epoch they reached)"
    other = [e for e, m in MIN_TRIALS.items() if e != evaluator and m <= n]
    if other:
        text += f"; {EVALUATORS[other[0]]} needs {MIN_TRIALS[other[0]]}"
    return text + "; run a sweep with more samples (`tunelab sweep RECIPE --samples N`)"
