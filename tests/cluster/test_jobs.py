"""A real Ray head started by `tunelab cluster start` (token auth on), jobs submitted by the CLI and by the Python
API, followed to the end, found by Ray's own `ray job list`, stopped; and the one-line errors for a wrong
address, a missing or wrong token, an unknown job and a head that is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, _free_port, run_cli
from tunelab.cluster import jobs

TRAIN = ["train", "--dataset", "mnist", "--model", "cnn", "--epochs", "1", "--subset", "600", "--batch-size", "64"]


def _one_line(proc, needle):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def head_data(tmp_path_factory, mnist_source):
    """A data root with real MNIST and a generated CIFAR-100 (the exact pickle format)."""
    from tunelab.jobs.dataset_files import import_dir

    root = tmp_path_factory.mktemp("head-data")
    assert import_dir(mnist_source, root) == ["mnist"]
    gen = subprocess.run([sys.executable, "-m", "tests.fakedata", "cifar100", str(root), "--train", "1500", "--test", "300"],
                         capture_output=True, text=True, cwd=ROOT)
    assert gen.returncode == 0, gen.stderr
    return root


@pytest.fixture(scope="module")
def head(head_data, redis_server):
    env = {"TUNELAB_DATA_DIR": str(head_data), "TUNELAB_REDIS_URL": redis_server.url, "RAY_ADDRESS": ""}
    port, dash = _free_port(), _free_port()
    started = run_cli("cluster", "start", "--port", str(port), "--dashboard-port", str(dash), "--num-cpus", "2",
                      env=env, timeout=300)
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{dash}"
    assert f"jobs {url}" in started.stdout and "auth: token from" in started.stdout, started.stdout
    yield {"env": env, "url": url, "port": port}
    stopped = run_cli("cluster", "stop", env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr


def test_status_and_bad_starts(head):
    status = run_cli("cluster", "status", "--json", env=head["env"])
    rec = json.loads(status.stdout)
    assert rec["nodes"] == 1 and rec["resources"]["CPU"] == 2 and rec["started_here"]
    assert rec["gcs_address"].endswith(f":{head['port']}") and rec["ray_version"]
    _one_line(run_cli("cluster", "start", env=head["env"]), "already running")
    _one_line(run_cli("cluster", "start", "--port", "6379", env={**head["env"], "TUNELAB_DATA_DIR": "/tmp/tl-none"}),
              "--port 6379 is Redis's port")


def test_jobs_from_cli_and_python_api_succeed_and_are_ray_jobs(head, store):
    env, url = head["env"], head["url"]
    # side by side on the 2-CPU head: MNIST through the CLI, and CIFAR-100 (fine and coarse boards, a batched
    # augmentation policy) through the Python API with the same settings
    sub = run_cli("submit", "--json", "--", *TRAIN, "--name", "via-cli", env=env)
    assert sub.returncode == 0, sub.stderr
    cli_id = json.loads(sub.stdout)["id"]
    api_env = jobs.job_env(url, redis_url=env["TUNELAB_REDIS_URL"], storage=None,
                           data_dir=Path(env["TUNELAB_DATA_DIR"]), data_dir_explicit=True)
    api_id = jobs.submit(["train", "--dataset", "cifar100", "--model", "resnet20", "--epochs", "2", "--batch-size", "50",
                          "--optimizer", "sgd", "--lr", "0.05", "--augment", "crop_flip+cutout", "--name", "via-api"],
                         address=url, env=api_env)

    follow = run_cli("jobs", "logs", cli_id, "--follow", env=env, timeout=400)
    assert follow.returncode == 0, follow.stdout[-2000:] + follow.stderr
    assert "epoch 1/1" in follow.stdout and f"job {cli_id} SUCCEEDED" in follow.stderr
    assert jobs.wait(url, api_id, timeout_s=400)["status"] == "SUCCEEDED", jobs.logs(url, api_id)[-2000:]

    runs = {r["name"]: r for r in store.list_runs()}
    assert runs["via-cli"]["status"] == "completed" and runs["via-api"]["status"] == "completed"
    mnist = json.loads(run_cli("leaderboard", "--dataset", "mnist", "--json", env=env).stdout)
    assert [r["run_name"] for r in mnist] == ["via-cli"]
    trial = store.get_trial(runs["via-api"]["best_trial"])
    assert trial["dataset"] == "cifar100" and trial["test_acc_coarse"] >= trial["test_acc"] > 0.02
    fine = json.loads(run_cli("leaderboard", "--dataset", "cifar100", "--json", env=env).stdout)
    coarse = json.loads(run_cli("leaderboard", "--dataset", "cifar100", "--label", "coarse", "--json", env=env).stdout)
    assert fine[0]["trial_id"] == coarse[0]["trial_id"] == trial["id"]
    assert coarse[0]["test_acc"] == pytest.approx(trial["test_acc_coarse"]) and coarse[0]["val_acc"] >= fine[0]["val_acc"]
    assert fine[0]["augment"] == "crop_flip:4+cutout"  # the policy, with its magnitudes, is on the leaderboard

    listed = json.loads(run_cli("jobs", "list", "--json", env=env).stdout)
    assert {cli_id, api_id} <= {j["id"] for j in listed}
    assert next(j for j in listed if j["id"] == cli_id)["command"].startswith("train --dataset mnist")
    assert json.loads(run_cli("jobs", "status", api_id, "--json", env=env).stdout)["status"] == "SUCCEEDED"
    assert "epoch 2/2" in run_cli("jobs", "logs", api_id, env=env).stdout

    # ordinary Ray jobs: Ray's own CLI lists them (it finds the token the same way once token mode is on)
    ray_cli = Path(sys.executable).with_name("ray")
    ray_list = subprocess.run([str(ray_cli), "job", "list", "--address", url], capture_output=True, text=True,
                              env={**os.environ, "RAY_AUTH_MODE": "token"}, timeout=60)
    assert ray_list.returncode == 0 and cli_id in ray_list.stdout and api_id in ray_list.stdout, ray_list.stderr


def test_local_run_and_run_on_the_warm_head_write_the_same_records(head, store, tmp_path, mnist_source):
    """`tunelab train` with no address: on the running head (`cluster start` recorded it), and with no head in this
    process (as Ray Train's local mode runs a worker's loop; no Ray started). Both write the same run, trial, epochs, checkpoint and test."""
    from tunelab.jobs.dataset_files import import_dir
    from tunelab.jobs.loop import load_checkpoint

    elsewhere = tmp_path / "data"  # no head recorded under this data root
    assert import_dir(mnist_source, elsewhere) == ["mnist"]
    args = [*TRAIN, "--epochs", "2", "--json"]
    on_head = run_cli(*args, env=head["env"])
    local = run_cli(*args, env={**head["env"], "TUNELAB_DATA_DIR": str(elsewhere)})
    assert on_head.returncode == 0 and local.returncode == 0, on_head.stderr + local.stderr
    assert "using the running Ray head at" in on_head.stderr and "in this process" not in on_head.stderr
    assert "in this process" in local.stderr and "starting Ray" not in local.stderr
    recs = {"head": json.loads(on_head.stdout), "local": json.loads(local.stdout)}

    runs = {k: store.get_run(r["run_id"]) for k, r in recs.items()}
    trials = {k: store.get_trial(r["trial_id"]) for k, r in recs.items()}
    epochs = {k: store.epochs(r["trial_id"]) for k, r in recs.items()}
    assert set(runs["head"]) == set(runs["local"]) and runs["head"]["status"] == runs["local"]["status"] == "completed"
    cpus = {k: runs[k]["config"].pop("cpus_per_worker") for k in runs}  # the head's 2 CPUs; here, this machine's
    assert runs["head"]["config"] == runs["local"]["config"] and cpus["head"] == 2
    assert set(trials["head"]) == set(trials["local"]), set(trials["head"]) ^ set(trials["local"])
    for k in ("head", "local"):
        t, rec = trials[k], recs[k]
        assert t["status"] == "completed" and t["epochs_done"] == 2 and t["test_acc"] == rec["test_acc"] > 0.5, (k, t)
        assert [e["epoch"] for e in epochs[k]] == [1, 2] and "test_acc" in epochs[k][-1]
        assert t["runtime"]["workers"] == 1 and t["runtime"]["threads"] == cpus[k] and t["runtime"] == runs[k]["runtime"]
        # the trial points at its newest checkpoint, which holds every epoch, under the run's experiment folder
        ckpt = Path(t["checkpoint"])
        assert ckpt.name.startswith("checkpoint_") and ckpt.parent.name == rec["run_id"], ckpt
        assert [m["epoch"] for m in load_checkpoint(ckpt)["history"]] == [1, 2] and rec["checkpoint"] == str(ckpt)
        assert len([d for d in ckpt.parent.glob("checkpoint_*") if d.is_dir()]) == 2  # num_to_keep, in local mode too
        assert (ckpt.parent / "tunelab-run.json").is_file()
    assert [set(e) for e in epochs["head"]] == [set(e) for e in epochs["local"]]


def test_a_running_job_stops(head):
    env, url = head["env"], head["url"]
    sub = run_cli("submit", "--json", "--", "train", "--dataset", "mnist", "--epochs", "50", env=env)
    job_id = json.loads(sub.stdout)["id"]
    deadline = time.monotonic() + 120
    while jobs.status(url, job_id)["status"] == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.5)
    stop = run_cli("jobs", "stop", job_id, env=env)
    assert stop.returncode == 0 and f"stopping {job_id}" in stop.stdout, stop.stderr
    assert jobs.wait(url, job_id, timeout_s=120)["status"] == "STOPPED"


def test_bad_input_is_one_line_within_seconds(head, tmp_path):
    env = head["env"]
    cases = [
        (["jobs", "list", "--address", "http://127.0.0.1:1"], {}, "cannot reach the Ray jobs server at 127.0.0.1:1"),
        (["jobs", "list"], {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")}, "requires an auth token and none was found"),
        (["jobs", "list"], {"RAY_AUTH_TOKEN": "not-the-token"}, "rejected the auth token"),
        (["jobs", "status", "no-such-job"], {}, "no job 'no-such-job'"),
        (["submit", "--", "data", "info"], {}, "submit runs `train` or `sweep`"),
        (["submit", "--", "sweep", "/no/such/recipe.yaml"], {}, "does not exist"),
        (["submit", "--address", "http://10.255.255.1:8265", "--", *TRAIN], {"TUNELAB_REDIS_URL": ""},
         "cannot reach the embedded result store"),
    ]
    for args, extra, needle in cases:
        t0 = time.monotonic()
        _one_line(run_cli(*args, env={**env, **extra}), needle)
        assert time.monotonic() - t0 < 30, args  # a generous bound: no minute-long retries


def test_cluster_down_after_stop(head):
    """Last in this module: the head stops, its processes are gone, and clients get one line."""
    env = head["env"]
    session = json.loads((Path(env["TUNELAB_DATA_DIR"]) / "cluster" / "head.json").read_text())["session_dir"]
    stopped = run_cli("cluster", "stop", env=env, timeout=120)
    assert stopped.returncode == 0 and "stopped the Ray head" in stopped.stdout
    import psutil

    left = [p for p in psutil.process_iter(["cmdline"]) if any(Path(session).name in a for a in p.info["cmdline"] or [])]
    assert left == []
    t0 = time.monotonic()
    _one_line(run_cli("jobs", "list", "--address", head["url"], env=env),
              f"cannot reach the Ray jobs server at {head['url'][len('http://'):]}")
    assert time.monotonic() - t0 < 30
    assert "no tunelab Ray head" in run_cli("cluster", "stop", env=env).stdout
