"""A recipe in Tune's terms: its search space, trial scheduler and search algorithm (`to_tune`), what `jobs.sweep`
runs. Imports Ray Tune; `tunelab.search_spaces` itself does not until `to_tune` is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ray import tune

from tunelab.search_spaces.spec import SweepSpec


@dataclass
class TuneSetup:
    """What Tune needs of a recipe: `param_space` for the Tuner (and `Tuner.restore`), with the scheduler and the
    searcher (None: Tune's BasicVariantGenerator) for a new sweep's TuneConfig."""

    param_space: dict
    scheduler: Any
    searcher: Optional[Any]


def to_tune(spec: SweepSpec) -> TuneSetup:
    """The recipe `spec` translated into Tune's search space, scheduler and searcher."""
    return TuneSetup(param_space=param_space(spec), scheduler=make_scheduler(spec), searcher=make_searcher(spec))


def param_space(spec: SweepSpec) -> dict:
    out = {}
    for key, dist in spec.space.items():
        (kind, args), = dist.items()
        if kind == "choice":
            out[key] = tune.grid_search(args) if spec.search.algorithm == "grid" else tune.choice(args)
        elif kind == "grid":
            out[key] = tune.grid_search(args)
        elif kind == "uniform":
            out[key] = tune.uniform(*args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        elif kind == "randint":
            out[key] = tune.randint(int(args[0]), int(args[1]))
        else:
            out[key] = tune.qloguniform(*args)
    return out


def make_scheduler(spec: SweepSpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, PopulationBasedTraining

    s, epochs = spec.scheduler, spec.budget.epochs
    if s.type == "fifo":
        return FIFOScheduler()
    if s.type == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=min(s.grace_period, epochs),
                             reduction_factor=s.reduction_factor)
    if s.type == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=epochs, reduction_factor=s.reduction_factor)
    mutations = {}
    for key, dist in (s.hyperparam_mutations or {}).items():
        (kind, args), = dist.items() if isinstance(dist, dict) else (("choice", dist),)
        mutations[key] = tune.loguniform(*args) if kind == "loguniform" else tune.uniform(*args) if kind == "uniform" else list(args)
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=s.perturbation_interval,
                                   hyperparam_mutations=mutations)


def make_searcher(spec: SweepSpec):
    algo = spec.search.algorithm
    if algo in ("random", "grid"):
        return None  # Tune's BasicVariantGenerator: random samples, grid_search expanded
    if algo == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(seed=spec.search.seed)
    else:
        from ray.tune.search.hyperopt import HyperOptSearch

        searcher = HyperOptSearch(random_state_seed=spec.search.seed)
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)
