"""Warm start: the trials of earlier sweeps that fit a new sweep, with their results, told to its searcher as done.

A trial fits when the new sweep could have run it as it ran: its value of every key of the new `space` (sampled, or
fixed by its recipe) lies inside the new distribution, and every other setting its result depends on is what the
new sweep trains with — dataset, labels, epochs, subset, validation split and each training setting, whether fixed,
overridden per model or a default. Resources, speed options and the seed (`_NEUTRAL`) may differ: they change how
fast a trial runs or its noise, not what it measures. Its reward is its best validation accuracy: the metric the new
sweep ranks by (a sweep ranked by another metric is refused). A trial that diverged counts as 0, what its own
sweep's searcher was told; trials without a result (unfinished, or failed with an error) are left out.

Only searchers that learn (optuna, hyperopt) take them; random and grid searches ignore warm start with a line.
Imports no Ray: `search_spaces.tune.to_tune(spec, warm=...)` hands the points to the searcher.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal, Optional

from pydantic import BaseModel, ValidationError

from tunelab.errors import validation_line
from tunelab.jobs.config import TrainConfig
from tunelab.search_spaces.spec import SpecError, SweepSpec

LEARNING = ("optuna", "hyperopt")  # the searchers a warm start informs
# TrainConfig fields that may differ between an earlier trial and the new sweep: how fast, not what is learned
_NEUTRAL = frozenset({"seed", "workers", "cpus_per_worker", "gpus_per_worker", "eval_batch_size", "max_failures",
                      "precision", "channels_last", "compile"})


class EarlierTrial(BaseModel):
    """A trial of an earlier sweep as the store has it: the values Tune sampled, its best validation accuracy, and
    how it ended ("diverged": the loss stopped being finite; "unfinished": running, or failed with an error)."""

    params: dict[str, Any] = {}
    val_acc: Optional[float] = None
    outcome: Literal["finished", "diverged", "unfinished"] = "finished"


class EarlierRun(BaseModel):
    """An earlier sweep: its name, its recipe (a SweepSpec's `model_dump()`, as the store keeps it), its trials."""

    name: str
    recipe: dict[str, Any]
    trials: list[EarlierTrial] = []


class WarmStart(BaseModel):
    """What a new sweep's searcher is told: `points` (values of the new space's keys) with their `rewards`, how many
    each earlier run gave, and how many did not fit (`reasons`: why, counted) or had no result."""

    algorithm: str
    points: list[dict[str, Any]] = []
    rewards: list[float] = []
    given: dict[str, int] = {}
    unfit: int = 0
    skipped: int = 0
    reasons: dict[str, int] = {}

    def line(self) -> str:
        """One progress line saying what the searcher was told, or that this search ignores warm start."""
        if self.algorithm not in LEARNING:
            return f"warm start ignored: the {self.algorithm} search does not learn from earlier trials"
        runs = ", ".join(f"{name}: {n}" for name, n in self.given.items())
        n = len(self.points)
        parts = [f"warm start: {n} earlier trial{'' if n == 1 else 's'} told to the {self.algorithm} searcher "
                 f"with their results ({runs})" if n else
                 f"warm start: no earlier trial fits this sweep ({runs}); the {self.algorithm} search starts afresh"]
        if self.unfit:
            why = "; ".join(f"{r} ×{k}" for r, k in Counter(self.reasons).most_common(2))
            more = "; …" if len(self.reasons) > 2 else ""
            parts.append(f"{self.unfit} did not fit ({why}{more})")
        if self.skipped:
            parts.append(f"{self.skipped} without a result left out")
        return "; ".join(parts)


def warm_start(spec: SweepSpec, runs: list[EarlierRun]) -> WarmStart:
    """The trials of `runs` that fit `spec`, with their rewards, for its searcher; SpecError for a run whose results
    cannot be rewards here (ranked by another metric, or a recipe that no longer validates)."""
    out = WarmStart(algorithm=spec.search.algorithm)
    if spec.search.algorithm not in LEARNING:
        return out
    new = spec.model_dump()
    reasons: Counter = Counter()
    for run in runs:
        old = _earlier_recipe(spec, run)
        given = 0
        for trial in run.trials:
            reward = 0.0 if trial.outcome == "diverged" else trial.val_acc if trial.outcome == "finished" else None
            if reward is None:
                out.skipped += 1
                continue
            point, why = fit(spec, trial.params, old, new)
            if point is None:
                out.unfit += 1
                reasons[why] += 1
                continue
            out.points.append(point)
            out.rewards.append(float(reward))
            given += 1
        out.given[run.name] = given
    out.reasons = dict(reasons)
    return out


def _earlier_recipe(spec: SweepSpec, run: EarlierRun) -> dict:
    metric = run.recipe.get("metric", "val_acc")
    if metric != spec.metric:
        raise SpecError(f"warm_start: sweep {run.name!r} ranked its trials by {metric}, this sweep by {spec.metric}; "
                        f"its results cannot be rewards here: leave it out of warm_start")
    try:
        return SweepSpec.model_validate(run.recipe).model_dump()
    except ValidationError as e:
        raise SpecError(f"warm_start: the recipe of sweep {run.name!r} no longer validates "
                        f"({validation_line(e, first=True)}): leave it out of warm_start") from None


def fit(spec: SweepSpec, params: dict, old: dict, new: Optional[dict] = None) -> tuple[Optional[dict], str]:
    """(the point of `spec`'s space an earlier trial ran, "") if the trial fits `spec`, else (None, why).

    `params`: the values Tune sampled for it; `old`: its sweep's recipe (`SweepSpec.model_dump()`); `new`:
    `spec.model_dump()`, if at hand."""
    new = new if new is not None else spec.model_dump()
    if (old["dataset"], old["labels"]) != (new["dataset"], new["labels"]):
        return None, f"dataset {old['dataset']}/{old['labels']}, here {new['dataset']}/{new['labels']}"
    try:
        values, ran = trained_with(old, params)
    except ValueError:
        return None, "its settings no longer validate"
    point = {}
    for key, dist in spec.space.items():
        value = values.get(key, getattr(ran, key, None))
        if value is None:
            return None, f"no value of {key}"
        inside = within(dist, value)
        if inside is None:
            (kind, args), = dist.items()
            return None, f"{key} outside {kind} {args}"
        point[key] = inside
    try:
        _, here = trained_with(new, point)
    except ValueError:
        return None, "this sweep cannot train its values"
    a, b = ran.model_dump(), here.model_dump()
    for key in a:
        if key not in _NEUTRAL and a[key] != b[key]:
            return None, f"{key} {a[key]}, here {b[key]}"
    return point, ""


def within(dist: dict, value: Any) -> Any:
    """`value` as the sampler `dist` ({kind: args}) yields it if it lies inside, else None."""
    (kind, args), = dist.items()
    if kind in ("choice", "grid"):
        # True == 1 in Python, but not as a setting
        return next((c for c in args if c == value and isinstance(c, bool) == isinstance(value, bool)), None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high = args[0], args[1]
    if kind == "randint":
        return int(value) if float(value).is_integer() and low <= value < high else None
    return float(value) if low <= value <= high else None


def trained_with(recipe: dict, sampled: dict) -> tuple[dict, TrainConfig]:
    """The values a trial of `recipe` (a SweepSpec's `model_dump()`) with `sampled` trains with, and its TrainConfig.
    The same as `jobs.trials.trial_config` (search_spaces may not import it; tests hold the two together)."""
    r = recipe["resources"]
    values = {"dataset": recipe["dataset"], "labels": recipe["labels"], "epochs": recipe["budget"]["epochs"],
              "workers": r["workers"], "cpus_per_worker": r["cpus_per_worker"], "gpus_per_worker": r["gpus_per_worker"],
              "max_failures": r.get("max_failures"), "subset": recipe["subset"], "seed": recipe["seed"], **recipe["fixed"], **sampled}
    values.update((recipe.get("overrides") or {}).get(values.get("model", "cnn"), {}))
    return values, TrainConfig(**{k: v for k, v in values.items() if v is not None})
