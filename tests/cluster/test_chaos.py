"""Nodes that die under a running sweep (`tunelab.cluster.chaos`): a head and three worker nodes on this machine, a
chaos thread removing a node that holds running trials every few seconds and adding a fresh one back, and the
driver killed once midway and resumed — no trial fails for it, no epoch is lost or stored twice, and the
leaderboard equals the one `tunelab results import` rebuilds from storage. The short form of
`benchmarks/chaos_sweep.py`; and a 2-worker DDP trial whose node is lost continues from its latest checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from benchmarks import chaos_sweep
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def cluster():
    """A head (no CPUs) and three 1-CPU worker nodes; nodes removed by a test are replaced by fresh ones."""
    from tunelab.cluster.chaos import ChaosCluster

    with ChaosCluster(workers=3) as c:
        yield c


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_sweep_survives_node_losses_and_a_driver_kill(tmp_path, redis_server, store, mnist_source, mnist_root,
                                                       cluster):
    lines: list[str] = []
    report = chaos_sweep.run(tmp_path, redis_url=redis_server.url, mnist=mnist_source, trials=8, epochs=4,
                             subset=600, every_s=(3.0, 6.0), max_losses=3, losses_by=0.6, kill_driver_at=0.4,
                             say=lines.append,
                             timeout_s=720, cluster=cluster, data_root=mnist_root)
    said = "\n".join(lines)
    assert report["node_losses"] >= 3, said  # nodes holding running trials, SIGKILLed
    assert report["driver_kills"] == 1 and report["run_status"] == "completed", said
    assert report["chaos_errors"] == [], report["chaos_errors"]
    # every trial finished (fifo: all complete): none failed for the chaos
    assert report["trials"] == 8 and report["statuses"] == {"completed": 8}, report["statuses"]
    assert report["epochs_stored"] == 32 and report["epochs_lost"] == 0 and report["epochs_duplicated"] == 0
    assert report["leaderboards_equal"], report["leaderboard_diff"]
    assert report["summary"]["counts"] == {"completed": 8}  # what the resumed driver said


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_two_worker_trial_whose_node_is_lost_continues_from_its_checkpoint(tmp_path, redis_server, store,
                                                                               mnist_root, cluster):
    env = {**os.environ, "TUNELAB_DATA_DIR": str(mnist_root), "TUNELAB_REDIS_URL": redis_server.url,
           "RAY_ADDRESS": "", "TUNELAB_STORAGE": ""}
    spec = tmp_path / "ddp.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "ddp-chaos", "dataset": "mnist", "subset": 1000, "budget": {"epochs": 5, "samples": 1},
        "scheduler": {"type": "fifo"}, "resources": {"workers": 2, "cpus_per_worker": 0.5, "max_failures": 3},
        "fixed": {"model": "cnn", "batch_size": 64, "precision": "fp32"}, "space": {"lr": {"choice": [0.002]}}}))
    driver = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "sweep", str(spec), "--address",
                               cluster.address, "--storage", str(tmp_path / "exp"), "--json"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=(tmp_path / "driver.log").open("w"), text=True)
    try:
        deadline = time.monotonic() + 400
        trial = None
        while trial is None or (trial.get("epochs_done") or 0) < 2:  # two epochs in, their checkpoints saved
            assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "driver.log").read_text()
            time.sleep(0.2)
            runs = store.list_runs()
            trial = next(iter(store.run_trials(runs[0]["id"])), None) if runs else None
        # a node running one of the trial's two DDP workers
        (node,) = [n for n in cluster.workers() if "ray::RayTrainWorker" in " ".join(cluster.work_on(n))][:1]
        lost_at = time.time()
        cluster.remove(node)  # the nodes left hold the trial and its two workers again (0.01 + 2 x 0.5 CPU)
        out, _ = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
        if len(cluster.workers()) < 3:
            cluster.add()
    log = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, log[-3000:]
    t = store.get_trial(trial["id"])
    epochs = store.epochs(trial["id"])
    assert json.loads(out)["counts"] == {"completed": 1}, out
    assert t["status"] == "completed" and [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5], (t, log[-3000:])
    before = [e for e in epochs if e["recorded_at"] < lost_at]
    # continued from its checkpoint: the epochs stored before the loss were not trained again
    assert len(before) >= 2 and [e["epoch"] for e in before] == list(range(1, len(before) + 1)), epochs
    assert all(e["recorded_at"] > lost_at for e in epochs[len(before):])
    assert t["best_val_acc"] > 0.5
