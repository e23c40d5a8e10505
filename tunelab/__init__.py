"""tunelab: distributed training and hyperparameter search for image classifiers (the front door)."""

__version__ = "0.1.0"
