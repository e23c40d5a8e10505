"""The train job under a real local Ray (DDP replicas staying equal is tested on two nodes in
tests/cluster/test_multinode.py): a worker killed mid-run is replaced and resumes from the latest checkpoint, and every epoch reaches the store exactly once through the one callback."""

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import ray

from tunelab.jobs import data
from tunelab.jobs.config import make_config
from tunelab.jobs.loop import load_checkpoint
from tunelab.jobs.train import fit
from tunelab.jobs.trials import leaderboards_for


@pytest.fixture(scope="module")
def small_mnist(mnist_root):
    return data.load("mnist", mnist_root)


def _start(store, run_id, cfg):
    trial = f"{run_id}-t0"
    store.start_run(run_id, kind="train", name=run_id, dataset=cfg.dataset, labels=cfg.labels, config=cfg.model_dump())
    store.start_trial(trial, run_id=run_id, model=cfg.model, dataset=cfg.dataset, labels=cfg.labels,
                      boards=leaderboards_for(cfg))
    return trial


def _train_workers():
    return [p for p in psutil.process_iter(["cmdline"]) if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]


def test_killed_worker_resumes_from_latest_checkpoint(ray_local, small_mnist, store, tmp_path):
    cfg = make_config(dataset="mnist", model="cnn", epochs=4, subset=4000, batch_size=64, workers=1,
                      cpus_per_worker=2, max_failures=2)
    prepared = data.prepare(small_mnist, "fine", cfg.val_fraction, cfg.seed, cfg.subset)
    trial = _start(store, "kill1", cfg)
    outcome = {}
    th = threading.Thread(target=lambda: outcome.update(r=fit(cfg, ray.put(prepared), run_id="kill1", trial_id=trial,
                                                             redis_url=store.url, storage_path=str(tmp_path))))
    th.start()
    deadline = time.monotonic() + 300
    while len(store.epochs(trial)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(store.epochs(trial)) >= 2, "training never reached epoch 2"
    victims = _train_workers()
    assert victims, "no Ray Train worker process found"
    for p in victims:
        os.kill(p.pid, signal.SIGKILL)  # mid-epoch 3: a real crash, no clean-up
    th.join(600)
    result = outcome["r"]
    assert result.error is None
    records = store.epochs(trial)
    assert [e["epoch"] for e in records] == [1, 2, 3, 4]  # every epoch exactly once
    # epoch 3 ran in a new worker process: its clock restarted, from epoch 2's checkpoint
    assert records[2]["time_total_s"] < records[1]["time_total_s"]
    t = store.get_trial(trial)
    assert t["test_acc"] == pytest.approx(result.metrics["test_acc"]) and t["test_acc"] > 0.9
    assert "test_acc" in records[-1] and "test_acc" not in records[0]
    # the checkpoint the store points at is the run's last, readable, under the storage path
    assert Path(t["checkpoint"]).is_dir() and t["checkpoint"].startswith(str(tmp_path))
    state = load_checkpoint(Path(t["checkpoint"]))
    assert state["epoch"] == 3 and state["config"]["model"] == "cnn"
    assert store.leaderboard("mnist")[0]["trial_id"] == trial
