"""A simulated 2-node cluster (`ray.cluster_utils.Cluster`, one CPU per node): a 2-worker training puts one worker
on each node and the replicas end identical; node-local default storage is refused in one line, shared storage
is checked from every node."""

from __future__ import annotations

import pytest
import ray
import torch

from tests.conftest import in_process
from tunelab.cluster import ClusterError, connect
from tunelab.cluster.storage import check_shared
from tunelab.jobs import data
from tunelab.jobs.config import make_config


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address)
    yield c
    ray.shutdown()
    c.shutdown()


def test_one_worker_per_node_and_identical_replicas(two_nodes, mnist_root, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    info = connect(two_nodes.address)
    assert info.nodes == 2 and info.cpus == 2
    check_shared(str(tmp_path / "exp"), explicit=True, info=info)  # both nodes see this machine's tmp_path

    cfg = make_config(dataset="mnist", model="cnn", epochs=1, subset=1000, batch_size=64, workers=2, cpus_per_worker=1)
    prepared = data.prepare(data.load("mnist", mnist_root), "fine", cfg.val_fraction, cfg.seed, cfg.subset)

    def loop(config):
        import ray.train
        import ray.train.torch

        from tunelab.jobs.config import TrainConfig
        from tunelab.jobs.loop import run_training

        ctx = ray.train.get_context()
        model = run_training(
            TrainConfig.model_validate(config["cfg"]), ray.get(config["data"]), rank=ctx.get_world_rank(),
            world_size=ctx.get_world_size(), report=lambda m, s: ray.train.report(m),
            wrap_model=lambda m: ray.train.torch.prepare_model(m, move_to_device=False),
        )
        torch.save({"node": ray.get_runtime_context().get_node_id(),
                    "state": {k: v.detach().cpu() for k, v in model.state_dict().items()}},
                   f"{config['out']}/rank{ctx.get_world_rank()}.pt")

    TorchTrainer(
        loop, train_loop_config={"cfg": cfg.model_dump(), "data": ray.put(prepared), "out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(storage_path=str(tmp_path / "exp"), name="two-nodes"),
    ).fit()
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert a["node"] != b["node"] and {a["node"], b["node"]} == nodes  # one worker on each node
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), f"{k} differs between ranks"


def test_node_local_default_storage_is_refused(two_nodes, mnist_root, redis_server, store, monkeypatch, capsys):
    info = connect(two_nodes.address)
    with pytest.raises(ClusterError, match="has 2 nodes and the default storage"):
        check_shared("/var/tmp/tunelab-experiments", explicit=False, info=info)
    check_shared("s3://bucket/tunelab", explicit=False, info=info)  # URIs are shared by construction
    # and through the CLI: one line naming what to pass, exit 2, before anything trains
    env = {"TUNELAB_DATA_DIR": str(mnist_root), "TUNELAB_REDIS_URL": redis_server.url, "TUNELAB_STORAGE": ""}
    res = in_process(monkeypatch, capsys, env, "train", "--dataset", "mnist", "--subset", "200", "--address",
                     two_nodes.address)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    # after the progress lines ("loading …", "connecting …"): one error line, the last, naming the fix
    assert len(errors) == 1 and res.stderr.splitlines()[-1] == errors[0] and "pass --storage s3://BUCKET/PATH" in errors[0]
    assert store.list_runs() == []  # refused before anything was recorded


def test_a_worker_larger_than_every_node_is_refused_though_the_total_would_hold_it(two_nodes):
    from tunelab.cluster import Knobs, check_fits

    info = connect(two_nodes.address)
    assert not info.autoscaling  # nodes started by hand: nothing can add more
    flags = Knobs("--workers", "--cpus-per-worker", "--gpus-per-worker")
    check_fits({"CPU": 1}, 2, info, knobs=flags)  # one worker on each node
    with pytest.raises(ClusterError, match=r"^this Ray cluster \(2 nodes: 2 CPUs, no GPU\) cannot hold this run: "
                                           r"--cpus-per-worker 2 is more CPUs than any node has \(1\); pass "
                                           r"--cpus-per-worker 1, or run on a larger cluster$"):
        check_fits({"CPU": 2}, 1, info, knobs=flags)
    # a sweep trial's own 0.01 CPU takes a node's place for a 1-CPU worker
    with pytest.raises(ClusterError, match=r"--workers 2 needs 2 CPUs at once \(1 CPU each, plus 0.01 CPU to drive "
                                           r"them\) and the cluster holds 1 such worker; pass --workers 1"):
        check_fits({"CPU": 1}, 2, info, knobs=flags, own={"CPU": 0.01})
