"""tunelab: distributed training and hyperparameter search for image classifiers, on Ray, with results in Redis.

    import tunelab

    result = tunelab.train(dataset="mnist", model="cnn", epochs=1, subset=3000)
    sweep = tunelab.sweep("search_spaces/mnist_smoke.yaml")
    rows = tunelab.leaderboard("mnist")

Importing tunelab imports neither torch nor Ray: the API's functions import what they use when called.
"""

from pathlib import Path as _Path

from tunelab import _rooms
from tunelab.errors import InputError, TunelabError

_rooms.install(_Path(__file__).resolve().parent)

__version__ = "0.1.0"

# name -> the module that defines it; loaded on first use (PEP 562)
_LAZY = {
    "train": "tunelab.api", "sweep": "tunelab.api", "resume": "tunelab.api", "leaderboard": "tunelab.api",
    "runs": "tunelab.api", "open_store": "tunelab.api", "find_sweep": "tunelab.api", "trials": "tunelab.api",
    "importance": "tunelab.api", "export": "tunelab.deploy", "evaluate": "tunelab.deploy", "predict": "tunelab.deploy",
    "ensemble": "tunelab.deploy", "import_folder": "tunelab.data", "remove_dataset": "tunelab.data",
    "datasets": "tunelab.data",
    "TrainResult": "tunelab.outcomes", "SweepResult": "tunelab.outcomes", "LeaderboardRow": "tunelab.outcomes",
    "RunRow": "tunelab.outcomes", "Trial": "tunelab.outcomes",
}
__all__ = ["InputError", "TunelabError", "__version__", *_LAZY, *_rooms.ROOMS]


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _rooms.ROOMS:
        return importlib.import_module(f"tunelab.{name}")
    raise AttributeError(f"module 'tunelab' has no attribute {name!r}")
