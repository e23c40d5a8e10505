"""A request the cluster's nodes can never hold is refused at once, in one line naming the setting and the fix,
before anything is recorded; a cluster that can autoscale refuses nothing and says what waits."""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.conftest import in_process, run_cli
from tunelab.cluster import ClusterError, Knobs, can_autoscale, check_fits
from tunelab.cluster.capacity import pending_line

FLAGS = Knobs("--workers", "--cpus-per-worker", "--gpus-per-worker")


@pytest.fixture(scope="module")
def two_cpus(ray_local):
    """The module's local Ray: one node, 2 CPUs, no GPU (the machine every refusal below is about)."""
    if ray_local.gpus:
        pytest.skip("this machine has a GPU")
    assert ray_local.nodes == 1 and ray_local.cpus == 2 and not ray_local.autoscaling
    return ray_local


def test_what_the_node_holds_fits(two_cpus):
    check_fits({"CPU": 1}, 2, two_cpus, knobs=FLAGS)  # `train --workers 2` on 2 cores: 1 CPU each
    check_fits({"CPU": 2}, 1, two_cpus, knobs=FLAGS)
    check_fits({"CPU": 0.5}, 2, two_cpus, knobs=FLAGS, own={"CPU": 0.01})  # a 2-worker sweep trial beside its actor


@pytest.mark.parametrize("per_worker,workers,own,needle", [
    ({"CPU": 1, "GPU": 1}, 1, None, "--gpus-per-worker 1 asks for a GPU and no node has one; pass --gpus-per-worker 0 "
                                    "to train on CPUs, or run on a cluster with GPUs"),
    ({"CPU": 3}, 1, None, "--cpus-per-worker 3 is more CPUs than any node has (2); pass --cpus-per-worker 2, or run "
                          "on a larger cluster"),
    ({"CPU": 1}, 3, None, "--workers 3 needs 3 CPUs at once (1 CPU each) and the cluster holds 2 such workers; "
                          "pass --workers 2"),
    ({"CPU": 1}, 2, {"CPU": 0.01}, "--workers 2 needs 2 CPUs at once (1 CPU each, plus 0.01 CPU to drive them) and the "
                                   "cluster holds 1 such worker; pass --workers 1"),
], ids=["gpu", "cpus", "workers", "workers beside the trial"])
def test_what_no_node_can_hold_is_one_line_naming_the_setting(two_cpus, per_worker, workers, own, needle):
    with pytest.raises(ClusterError) as e:
        check_fits(per_worker, workers, two_cpus, knobs=FLAGS, own=own)
    msg = str(e.value)
    assert msg.startswith("this Ray cluster (1 node: 2 CPUs, no GPU) cannot hold this run: ") and "\n" not in msg
    assert needle in msg, msg


def test_an_autoscaling_cluster_refuses_nothing_and_says_what_waits(two_cpus, monkeypatch):
    from ray.util.placement_group import placement_group, remove_placement_group

    # a Ray started by hand: its autoscaler monitor runs read-only and no node carries a node group
    assert not can_autoscale(local=False)
    monkeypatch.setenv("TUNELAB_AUTOSCALING", "1")
    assert can_autoscale(local=False)
    need = {"CPU": 4, "GPU": 0.25}
    check_fits(need, 1, dataclasses.replace(two_cpus, autoscaling=True), knobs=FLAGS)  # nodes may come
    pgs = [placement_group([need]) for _ in range(2)]  # what two such trials ask Ray for
    try:
        deadline = time.monotonic() + 30
        while (line := pending_line(need, "trial")) is None and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for pg in pgs:
            remove_placement_group(pg)
    assert line == ("waiting for resources: 2 trials pending, each needs {CPU: 4, GPU: 0.25}; the cluster has "
                    "{CPU: 2} (an autoscaler may add nodes)")


def _refusal(res) -> str:
    """The one line a refused command prints: on this machine the request is checked before data loads or Ray
    starts, so nothing comes before it."""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and "Traceback" not in res.stderr + res.stdout, res.stderr
    assert len(lines) == 1 and lines[0].startswith("error: this machine (1 node: 2 CPUs, no GPU) cannot hold"), res.stderr
    return lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--gpus-per-worker", "1"], "--gpus-per-worker 1 asks for a GPU and no node has one; pass --gpus-per-worker 0"),
    (["--workers", "3"], "(1 node: 2 CPUs, no GPU) cannot hold this run: --workers 3 needs 3 CPUs at once"),
], ids=["gpus", "workers"])
def test_train_beyond_the_cluster_is_refused_before_anything_is_recorded(two_cpus, mnist_root, redis_server, store,
                                                                         tmp_path, monkeypatch, capsys, args, needle):
    env = {"TUNELAB_DATA_DIR": str(mnist_root), "TUNELAB_REDIS_URL": redis_server.url,
           "TUNELAB_STORAGE": str(tmp_path / "exp"), "RAY_ADDRESS": ""}
    res = in_process(monkeypatch, capsys, env, "train", "--dataset", "mnist", "--subset", "1000", *args)
    assert needle in _refusal(res)
    assert store.list_runs() == [] and not (tmp_path / "exp").exists()


def test_a_gpu_recipe_on_a_machine_without_gpus_is_refused_not_left_waiting(two_cpus, redis_server, store, tmp_path):
    from tests import fakedata

    fakedata.write_cifar100(tmp_path / "data", n_train=1500, n_test=300)
    env = {"TUNELAB_DATA_DIR": str(tmp_path / "data"), "TUNELAB_REDIS_URL": redis_server.url,
           "TUNELAB_STORAGE": str(tmp_path / "exp"), "RAY_ADDRESS": ""}
    # the recipe's trials ask for gpus_per_worker 0.25: Tune would wait for that GPU for ever
    res = run_cli("sweep", "search_spaces/cifar100_architectures.yaml", "--samples", "1", env=env, timeout=120)
    line = _refusal(res)
    assert "resources.gpus_per_worker 0.25 asks for a GPU and no node has one" in line, line
    assert "set resources.gpus_per_worker: 0" in line and "in search_spaces/cifar100_architectures.yaml" in line, line
    assert store.list_runs() == [] and not (tmp_path / "exp").exists()  # no run left "running", no experiment


# Ray's laptop autoscaler (`RAY_FAKE_CLUSTER=1`, the fake multi-node provider): a head whose autoscaler may launch up
# to two 1-GPU nodes. None is launched here: nothing asks for one.
FAKE_AUTOSCALING = {
    "cluster_name": "fake", "max_workers": 2, "upscaling_speed": 1.0, "idle_timeout_minutes": 1, "docker": {},
    "provider": {"type": "fake_multinode", "disable_launch_config_check": True, "disable_node_updaters": True},
    "auth": {"ssh_user": "ubuntu"}, "head_node_type": "ray.head.default",
    "available_node_types": {
        "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
        "gpu_node": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 2},
    },
    **{k: [] for k in ("cluster_synced_files", "rsync_exclude", "rsync_filter", "initialization_commands",
                       "setup_commands", "head_setup_commands", "worker_setup_commands", "head_start_ray_commands",
                       "worker_start_ray_commands")},
    "file_mounts": {}, "file_mounts_sync_continuously": False,
}

PROBE = """
import sys, time
from tunelab.cluster import Knobs, can_autoscale, check_fits, connect
info = connect(sys.argv[1])
deadline = time.monotonic() + 60
while not can_autoscale() and time.monotonic() < deadline:  # the autoscaler reports every few seconds
    time.sleep(1)
info = connect(sys.argv[1])
check_fits({"CPU": 1, "GPU": 1}, 2, info, knobs=Knobs("--workers", "--cpus-per-worker", "--gpus-per-worker"))
print(info.gpus, info.autoscaling)
"""


@pytest.mark.slow
def test_a_head_whose_autoscaler_has_node_types_to_launch_counts_as_autoscaling(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, _free_port
    from tunelab.cluster import head

    config = tmp_path / "autoscaling.json"
    config.write_text(json.dumps(FAKE_AUTOSCALING))
    port = _free_port()
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_ADDRESS": "", "TUNELAB_AUTOSCALING": ""}
    started = subprocess.run([head._ray_cli(), "start", "--head", f"--port={port}", "--num-cpus=1",
                              "--include-dashboard=false", f"--autoscaling-config={config}",
                              f"--ray-client-server-port={_free_port()}",
                              f"--dashboard-agent-listen-port={_free_port()}"],
                             env=env, capture_output=True, text=True, timeout=180)
    session = head._session_dir(port)
    try:
        assert started.returncode == 0 and session, started.stdout + started.stderr
        probe = subprocess.run([sys.executable, "-c", PROBE, f"127.0.0.1:{port}"], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
        # no GPU yet, and `--gpus-per-worker 1 --workers 2` is not refused: the autoscaler may add both
        assert probe.returncode == 0 and probe.stdout.split() == ["0.0", "True"], probe.stdout + probe.stderr
    finally:
        if session:  # this head's processes only, as `tunelab cluster stop` stops its own
            state = head.HeadInfo(gcs_address=f"127.0.0.1:{port}", dashboard_url="", session_dir=session,
                                  started=time.time(), num_cpus=1, num_gpus=None, token=None)
            head.state_file(tmp_path).parent.mkdir(parents=True, exist_ok=True)
            head.state_file(tmp_path).write_text(json.dumps(dataclasses.asdict(state)))
            head.stop(tmp_path)
