"""A recipe in Tune's terms: its search space, trial scheduler and search algorithm (`to_tune`), what `jobs.sweep`
runs. Imports Ray Tune; `tunelab.search_spaces` itself does not until `to_tune` is asked for."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Optional

from ray import tune
from ray.tune.search.hyperopt import HyperOptSearch

from tunelab.search_spaces.spec import SweepSpec
from tunelab.search_spaces.warm import WarmStart


@dataclass
class TuneSetup:
    """What Tune needs of a recipe: `param_space` for the Tuner (and `Tuner.restore`), with the scheduler and the
    searcher (None: Tune's BasicVariantGenerator) for a new sweep's TuneConfig."""

    param_space: dict
    scheduler: Any
    searcher: Optional[Any]


def to_tune(spec: SweepSpec, warm: Optional[WarmStart] = None) -> TuneSetup:
    """The recipe `spec` translated into Tune's search space, scheduler and searcher; `warm`: earlier trials that fit
    it (`search_spaces.warm.warm_start`), told to a searcher that learns as done, with their results."""
    return TuneSetup(param_space=param_space(spec), scheduler=make_scheduler(spec),
                     searcher=make_searcher(spec, warm))


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


def make_searcher(spec: SweepSpec, warm: Optional[WarmStart] = None):
    algo = spec.search.algorithm
    if algo in ("random", "grid"):
        return None  # Tune's BasicVariantGenerator: random samples, grid_search expanded
    points, rewards = (list(warm.points), list(warm.rewards)) if warm else ([], [])
    seed = warm_seed(spec.search.seed, len(points))
    if algo == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        # evaluated_rewards: the points join the study as COMPLETE trials with these values; none is run again
        searcher = OptunaSearch(seed=seed, points_to_evaluate=points or None, evaluated_rewards=rewards or None)
    elif points:
        searcher = WarmHyperOptSearch(list(zip(points, rewards)), random_state_seed=seed)
    else:
        searcher = HyperOptSearch(random_state_seed=seed)
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)


def warm_seed(seed: int, told: int) -> int:
    """The searcher's seed: the recipe's, or with `told` earlier trials one drawn from both. Both searchers draw
    their first points at random (Optuna's first 10, HyperOpt's first 20, told trials included): with the earlier
    sweep's seed, a follow-up would draw that sweep's random points again."""
    return seed if not told else random.Random(f"{seed}:{told}").randrange(2**31)


class WarmHyperOptSearch(HyperOptSearch):
    """HyperOptSearch told `evaluated` ((point, reward) pairs) as finished trials before it suggests any.

    Ray's HyperOptSearch has no `evaluated_rewards`: its `points_to_evaluate` would run the points again. These join
    HyperOpt's history as done, with loss = the reward in HyperOpt's sign (it minimises), as trials Tune ran would.
    They count towards `n_initial_points`, the random start TPE needs before it models (20), so a warm sweep reaches
    TPE's guided suggestions sooner by as many trials."""

    def __init__(self, evaluated: list[tuple[dict, float]], **kwargs: Any):
        self._evaluated = [(dict(p), float(r)) for p, r in evaluated]
        super().__init__(**kwargs)

    def _setup_hyperopt(self) -> None:
        from hyperopt import base
        from hyperopt.fmin import generate_trial

        super()._setup_hyperopt()  # called once the space is known (Tune's set_search_properties)
        docs = []
        for tid, (point, reward) in enumerate(self._evaluated):
            point = dict(point)
            self._convert_categories_to_indices(point)  # hp.choice keeps an index, as for points_to_evaluate
            doc = generate_trial(tid, point)
            doc.update(state=base.JOB_STATE_DONE, result={"loss": self.metric_op * reward, "status": base.STATUS_OK})
            docs.append(doc)
        self._hpopt_trials.insert_trial_docs(docs)
        self._hpopt_trials.refresh()
