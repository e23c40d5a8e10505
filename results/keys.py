"""Every Redis key tunelab uses, and the schema version. Nothing else spells a key."""

SCHEMA_VERSION = 1
PREFIX = "tl"

SCHEMA = f"{PREFIX}:schema"  # STRING: schema version of the data in this database
RUNS = f"{PREFIX}:runs"  # ZSET: run ids by start time
EVENTS = f"{PREFIX}:events"  # pub/sub channel: run/trial/epoch updates
VERSION = f"{PREFIX}:version"  # STRING counter: bumped by every write a view shows, so readers can cache until it moves
DATASETS = f"{PREFIX}:datasets"  # HASH: dataset name -> JSON (title, label sets, image shape): what boards can exist
LEADERBOARD_PATTERN = f"{PREFIX}:lb:*"  # SCAN pattern matching every leaderboard key


def run(run_id: str) -> str:
    """HASH: kind, name, dataset, labels, status, times, config JSON, storage path, best trial."""
    return f"{PREFIX}:run:{run_id}"


def run_trials(run_id: str) -> str:
    """ZSET: the run's trial ids by best validation metric."""
    return f"{PREFIX}:run:{run_id}:trials"


def trial(trial_id: str) -> str:
    """HASH: run, status, model, augment, pretrained, params JSON, best/last metrics, test accuracy, costs (n_params,
    train_time_s, infer_images_per_s), error."""
    return f"{PREFIX}:trial:{trial_id}"


def trial_epochs(trial_id: str) -> str:
    """HASH: epoch number -> one JSON record (idempotent on replay)."""
    return f"{PREFIX}:trial:{trial_id}:epochs"


def leaderboard(dataset: str, label: str) -> str:
    """ZSET: trial ids by best validation accuracy, per dataset and label kind (fine/coarse)."""
    return f"{PREFIX}:lb:{dataset}:{label}"


def board_of(key: str) -> tuple[str, str]:
    """(dataset, label) of a leaderboard key."""
    dataset, label = key.removeprefix(f"{PREFIX}:lb:").rsplit(":", 1)
    return dataset, label


def board_facet(dataset: str, label: str, facet: str) -> str:
    """SET: the values of `facet` (family, augment) among the trials on a leaderboard, for its filters."""
    return f"{PREFIX}:lbf:{dataset}:{label}:{facet}"
