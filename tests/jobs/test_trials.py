"""A sweep's trial config from the dumped recipe, where unwritten writes are spilled, and the one fallback for an
unreadable checkpoint (no Ray)."""

from pathlib import Path

import torch
import yaml

from tunelab import search_spaces
from tunelab.jobs.checkpoints import load_checkpoint_or_none, save_checkpoint
from tunelab.jobs.manifest import spill_path
from tunelab.jobs.trials import trial_config


def test_a_trial_config_is_recipe_then_sampled_then_the_models_overrides(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({
        "name": "t", "dataset": "mnist", "subset": 600, "seed": 3, "budget": {"epochs": 5},
        "resources": {"workers": 2, "cpus_per_worker": 1.5}, "fixed": {"batch_size": 64, "lr": 0.01},
        "space": {"model": {"choice": ["cnn", "cnn_bn"]}, "lr": {"loguniform": [0.001, 0.1]}},
        "overrides": {"cnn_bn": {"lr": 0.2}},
    }))
    spec_dict = search_spaces.load(p).model_dump()
    cfg = trial_config(spec_dict, {"model": "cnn", "lr": 0.05})
    assert (cfg.dataset, cfg.epochs, cfg.workers, cfg.cpus_per_worker, cfg.subset, cfg.seed, cfg.batch_size) == \
        ("mnist", 5, 2, 1.5, 600, 3, 64)
    assert cfg.lr == 0.05  # sampled beats fixed
    assert trial_config(spec_dict, {"model": "cnn_bn", "lr": 0.05}).lr == 0.2  # the model's override beats both


def test_unwritten_writes_go_beside_the_manifest_or_home_for_a_uri(tmp_path):
    assert spill_path(str(tmp_path / "exp"), "r1") == tmp_path / "exp" / "tunelab-unwritten-r1.jsonl"
    assert spill_path("s3://bucket/exp", "r1") == Path.home() / ".tunelab" / "unwritten-r1.jsonl"


def test_an_unreadable_checkpoint_is_one_warning_and_none(tmp_path, caplog):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    save_checkpoint({"epoch": 2, "w": torch.zeros(2)}, good)
    (bad / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    assert load_checkpoint_or_none(good)["epoch"] == 2
    with caplog.at_level("WARNING", logger="tunelab"):
        assert load_checkpoint_or_none(bad, "trial x is not evaluated on test") is None
    (record,) = caplog.records
    assert record.getMessage().startswith(f"trial x is not evaluated on test: checkpoint {bad / 'checkpoint.pt'} "
                                          "cannot be read (")
