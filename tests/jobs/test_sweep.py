"""Sweeps under a real local Ray Tune: ASHA stops trials early and every trial lands in the store; the optuna
and hyperopt searchers run; a 2-worker trial runs a TorchTrainer; an interrupted sweep resumes without rerunning
finished trials."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tunelab import search_spaces
from tunelab.jobs import data
from tunelab.jobs.loop import load_checkpoint
from tunelab.jobs.sweep import run_sweep
from tunelab.results import ResultStore, keys


def _spec(tmp_path, **over):
    raw = {
        "name": over.pop("name", "t"), "dataset": "mnist", "subset": 600,
        "budget": {"epochs": 3, "samples": 4},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "resources": {"workers": 1, "cpus_per_worker": 1}, "max_concurrent": 2, "top_k_test": 1,
        "fixed": {"model": "cnn", "batch_size": 64},
        "space": {"lr": {"loguniform": [0.0001, 0.01]}},
    }
    for k, v in over.items():
        raw[k] = {**raw[k], **v} if isinstance(raw.get(k), dict) and isinstance(v, dict) else v
    p = tmp_path / f"{raw['name']}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return search_spaces.load(p)


@pytest.fixture(scope="module")
def mnist_ref(ray_local, mnist_root):
    import ray

    raw = data.load("mnist", mnist_root)
    return ray.put(data.prepare(raw, "fine", 0.1, 0, 600))


def _sweep(spec, store, tmp_path, mnist_ref, run_id="s1"):
    store.start_run(run_id, kind="sweep", name=spec.name, dataset="mnist", labels="fine", config=spec.model_dump())
    return run_sweep(spec, search_spaces.to_tune(spec), store, run_id, mnist_ref, str(tmp_path / "exp"))


def test_asha_stops_trials_early_and_stores_every_trial(tmp_path, store, mnist_ref, monkeypatch, capsys):
    spec = _spec(tmp_path, space={"lr": {"loguniform": [0.00003, 0.01]}})
    summary = _sweep(spec, store, tmp_path, mnist_ref)
    trials = store.run_trials("s1")
    assert len(trials) == 4
    statuses = [t["status"] for t in trials]
    assert "stopped" in statuses and "completed" in statuses, statuses
    for t in trials:
        epochs = store.epochs(t["id"])
        assert [e["epoch"] for e in epochs] == list(range(1, t["epochs_done"] + 1))
        assert "test_acc" not in epochs[-1]  # selection on validation: no test peeking per trial
    best = trials[0]
    assert best["id"] == summary.best_trial and best["test_acc"] is not None  # top-1 evaluated on test
    assert all(t.get("test_acc") is None for t in trials[1:])
    assert summary.counts["completed"] + summary.counts["stopped"] == 4
    lb = store.leaderboard("mnist")
    assert lb[0]["trial_id"] == best["id"] and lb[0]["test_acc"] == best["test_acc"]
    run = store.get_run("s1")
    assert run["summary"]["best_trial"] == best["id"]

    # the dashboard's API over this real sweep: the store's order, and charts drawn from its recorded epochs
    from fastapi.testclient import TestClient

    from tunelab.dashboards.web import create_app

    with TestClient(create_app(lambda: store)) as client:
        detail = client.get("/api/runs/s1").json()
        assert [t["id"] for t in detail["trials"]] == [t["id"] for t in trials]
        assert [r["trial_id"] for r in client.get("/api/leaderboard?dataset=mnist").json()][:1] == [best["id"]]
        charts = client.get("/api/runs/s1/charts").json()
        curves = charts["curves"]["data"]
        assert [len(c["x"]) for c in curves] == [t["epochs_done"] for t in trials]
        assert {c["name"] for c in curves if c["line"].get("dash") == "dash"} == {
            f"{t['id'].rsplit('-', 1)[-1]} (stopped)" for t in trials if t["status"] == "stopped"}
        assert len(charts["parallel"]["data"][0]["dimensions"][0]["values"]) == 4  # lr, one value per trial
        assert 0 <= charts["best_so_far"]["data"][1]["x"][0] < 120  # seconds since the sweep started

    # the experiment directory alone rebuilds the store: same leaderboard, trials and epochs; twice changes nothing
    def snapshot():
        trials_now = store.run_trials("s1")
        return (store.leaderboard("mnist"), [{k: t.get(k) for k in ("id", "status", "epochs_done", "best_val_acc",
                                                                     "test_acc", "params", "checkpoint")} for t in trials_now],
                {t["id"]: [{k: v for k, v in e.items() if k != "recorded_at"} for e in store.epochs(t["id"])]
                 for t in trials_now})

    from tests.conftest import in_process

    before = snapshot()
    store.r.flushdb()
    res = in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": store.url}, "results", "import", str(tmp_path / "exp"))
    assert res.returncode == 0 and "imported 1 run(s)" in res.stdout, res.stderr
    assert snapshot() == before
    once = {k: store.r.dump(k) for k in store.r.scan_iter("tl:*") if k != keys.VERSION and not k.startswith("tl:trial:")}
    in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": store.url}, "results", "import", str(tmp_path / "exp"))
    assert {k: store.r.dump(k) for k in once} == once and snapshot() == before


@pytest.mark.parametrize("algorithm", ["optuna", "hyperopt"])
def test_model_based_searchers_run(tmp_path, store, mnist_ref, algorithm):
    spec = _spec(tmp_path, name=algorithm, budget={"epochs": 1, "samples": 2}, scheduler={"type": "fifo"},
                 search={"algorithm": algorithm}, space={"lr": {"loguniform": [0.0005, 0.005]},
                                                         "model": {"choice": ["cnn", "cnn_bn"]}})
    summary = _sweep(spec, store, tmp_path, mnist_ref, run_id=algorithm)
    trials = store.run_trials(algorithm)
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    assert len({t["params"]["lr"] for t in trials}) == 2
    assert summary.best_val_acc is not None


def test_two_worker_trial_runs_a_torch_trainer(tmp_path, store, mnist_ref):
    spec = _spec(tmp_path, name="ddp", budget={"epochs": 1, "samples": 1}, scheduler={"type": "fifo"},
                 resources={"workers": 2, "cpus_per_worker": 0.5}, max_concurrent=1)  # + the trial's 0.01 CPU fit 2 cores
    summary = _sweep(spec, store, tmp_path, mnist_ref, run_id="ddp")
    (t,) = store.run_trials("ddp")
    assert t["status"] == "completed" and t["epochs_done"] == 1 and t["best_val_acc"] > 0.2
    assert summary.test.get("test_acc") is not None


def _ray_processes_of_session(sid: int) -> list[int]:
    """Ray's processes left in the session a driver we started opened (its own, with start_new_session)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and os.getsid(int(d.name)) == sid and b"ray" in (d / "cmdline").read_bytes():
                found.append(int(d.name))
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
    return found


def _kill_ray_of_session(sid: int) -> None:
    for pid in _ray_processes_of_session(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # ended on its own meanwhile


def _tune_statuses(exp_dir: Path) -> dict[str, str]:
    """Trial statuses in the experiment state Tune last saved (what a resume starts from)."""
    state = max(exp_dir.glob("experiment_state-*.json"), key=lambda f: f.stat().st_mtime)  # one per session
    return {json.loads(t)["trial_id"]: json.loads(t)["status"] for t, _ in json.loads(state.read_text())["trial_data"]}


@pytest.mark.slow
@pytest.mark.timeout(1500)  # three drivers, each starting Ray; minutes on a busy 2-core machine
def test_a_sweep_stopped_then_killed_resumes_without_rerunning_finished_trials(tmp_path, mnist_source, store):
    """SIGTERM (graceful stop), a checkpoint cut short, then SIGKILL of the resumed driver (a crash while Tune's
    saved state lags the store): two resumes finish the sweep, trials finished before each stop are not run
    again, the trial with the broken checkpoint starts over with a warning, and every epoch is stored once."""
    data_dir = tmp_path / "data"
    # Tune snapshots its state every >= 10 s and after each checkpoint; a crash in between finds the store ahead
    # of that state. No periodic snapshots here: the crash below lands in that window every time.
    env = {**os.environ, "TUNELAB_DATA_DIR": str(data_dir), "TUNELAB_REDIS_URL": store.url, "RAY_ADDRESS": "",
           "TUNE_GLOBAL_CHECKPOINT_S": "3600"}
    subprocess.run([sys.executable, "-m", "tunelab.cli", "data", "import", str(mnist_source)], env=env, check=True,
                   capture_output=True, cwd=ROOT)
    spec_path = tmp_path / "resume.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "resume-me", "dataset": "mnist", "subset": 600, "budget": {"epochs": 4, "samples": 3},
        "scheduler": {"type": "fifo"}, "resources": {"workers": 1, "cpus_per_worker": 2}, "max_concurrent": 1,
        "fixed": {"model": "cnn", "batch_size": 64}, "space": {"lr": {"loguniform": [0.0005, 0.005]}},
    }))
    exp_dir = data_dir / "experiments" / "resume-me"
    drivers: list[tuple[subprocess.Popen, Path]] = []

    def sweep(*args: str) -> subprocess.Popen:
        log = tmp_path / f"driver{len(drivers)}.err"
        proc = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "sweep", *args], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
        drivers.append((proc, log))
        return proc

    def trials() -> dict[str, dict]:
        runs = [r for r in store.list_runs() if r.get("name") == "resume-me"]
        return {t["id"]: t for t in store.run_trials(runs[0]["id"])} if runs else {}

    def wait_for(proc: subprocess.Popen, what: str, ready) -> dict[str, dict]:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the sweep ended before {what}: {drivers[-1][1].read_text()[-2000:]}"
            now = trials()
            if ready(now):
                return now
            time.sleep(0.1)
        raise AssertionError(f"no {what} within 10 minutes")

    def done(ts: dict) -> list[dict]:
        return [t for t in ts.values() if t.get("status") == "completed"]

    def midway(ts: dict) -> list[dict]:
        # two epochs in: the first one's checkpoint is registered with Tune (a result reaches the store a moment
        # before its checkpoint reaches Tune's books); two more to go, time enough to stop before it finishes
        return [t for t in ts.values() if t.get("status") == "running" and 2 <= (t.get("epochs_done") or 0) < 4]

    try:
        # 1. SIGTERM once a trial has finished and the next is midway: a graceful stop, resumable
        first = sweep(str(spec_path))
        ts = wait_for(first, "a finished and a midway trial", lambda ts: done(ts) and midway(ts))
        first.send_signal(signal.SIGTERM)  # what a scheduler or `kill` sends
        assert first.wait(300) == 130, drivers[0][1].read_text()
        run_id = store.list_runs()[0]["id"]
        assert store.get_run(run_id)["status"] == "stopped"
        (a,) = done(ts)
        a = store.get_trial(a["id"])
        a_epochs = store.epochs(a["id"])
        # the midway trial's checkpoints (the one Tune saved as its latest among them), cut short as a crash
        # while writing leaves them
        (b,) = [t for t in trials().values() if t["status"] == "running" and t.get("checkpoint")]
        broken = sorted(Path(b["checkpoint"]).parent.glob("checkpoint_*/checkpoint.pt"))
        assert broken, b
        for f in broken:
            f.write_bytes(f.read_bytes()[:1000])
        cut_at = time.time()

        # 2. resume; SIGKILL the driver the moment that trial has finished again (from epoch 1)
        second = sweep("resume", "resume-me")
        wait_for(second, "the restarted trial finishing", lambda ts: ts[b["id"]]["status"] == "completed")
        second.kill()
        second.wait(60)
        b_done, b_epochs = store.get_trial(b["id"]), store.epochs(b["id"])
        warning = drivers[1][1].read_text()
        assert any(f"{f} cannot be read" in warning for f in broken) and "starts again from epoch 1" in warning, warning
        assert "Traceback" not in warning, warning
        # the crash left Tune's saved state behind the store: it still holds the finished trial as unfinished
        assert _tune_statuses(exp_dir)[b["id"].rsplit("-", 1)[-1]] != "TERMINATED"
        _kill_ray_of_session(second.pid)  # what the dead driver's Ray left running (its agents linger minutes)

        # 3. resume again: it finishes the sweep without running finished trials again
        res = subprocess.run([sys.executable, "-m", "tunelab.cli", "sweep", "resume", "resume-me", "--json"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr
        summary = json.loads(res.stdout)
        assert summary["counts"] == {"completed": 3} and store.get_run(run_id)["status"] == "completed"
        final = trials()
        assert len(final) == 3 and all(t["status"] == "completed" for t in final.values())
        for t in final.values():
            assert [e["epoch"] for e in store.epochs(t["id"])] == [1, 2, 3, 4]  # every epoch once
        for before, epochs in ((a, a_epochs), (b_done, b_epochs)):  # finished before a stop: not run again
            after = final[before["id"]]
            assert (after["started"], after["ended"]) == (before["started"], before["ended"])
            assert store.epochs(before["id"]) == epochs
        assert all(e["recorded_at"] < cut_at for e in a_epochs)
        assert all(e["recorded_at"] > cut_at for e in b_epochs)  # trained again from epoch 1
        assert final[b["id"]]["started"] == b["started"]  # a resumed trial keeps the time it first started
    finally:
        for proc, _ in drivers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(60)
            _kill_ray_of_session(proc.pid)


def test_an_unreadable_checkpoint_costs_its_trial_the_test_figure_not_the_sweep_its_summary(tmp_path, store, caplog):
    from tunelab.jobs.sweep import summarise

    spec = _spec(tmp_path, name="cut", top_k_test=1)
    store.start_run("cut", kind="sweep", name="cut", dataset="mnist", labels="fine", config=spec.model_dump())
    store.start_trial("cut-00000", run_id="cut", model="cnn", dataset="mnist", labels="fine",
                      boards={"fine": {"val": "val_acc", "test": "test_acc"}})
    store.record_epoch("cut-00000", {"epoch": 1, "val_acc": 0.5})
    ckpt = tmp_path / "checkpoint_000000"
    ckpt.mkdir()
    (ckpt / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")  # a torch zip archive, truncated
    store.set_checkpoint("cut-00000", str(ckpt))
    store.finish_trial("cut-00000", "completed")
    with caplog.at_level("WARNING", logger="tunelab"):
        summary = summarise(spec, store, "cut", None, None, 1.0)
    assert summary.best_trial == "cut-00000" and summary.tests == {} and summary.counts == {"completed": 1}
    assert store.get_run("cut")["summary"]["best_trial"] == "cut-00000"
    assert f"{ckpt / 'checkpoint.pt'} cannot be read" in caplog.text


def test_pbt_perturbs_and_restores_from_checkpoints(tmp_path, store, mnist_ref):
    spec = _spec(tmp_path, name="pbt", budget={"epochs": 4, "samples": 3}, max_concurrent=3,
                 resources={"workers": 1, "cpus_per_worker": 0.5},
                 scheduler={"type": "pbt", "perturbation_interval": 1,
                            "hyperparam_mutations": {"lr": {"loguniform": [0.0001, 0.01]}, "augment": ["none", "crop:2"]}},
                 fixed={"model": "cnn", "batch_size": 64, "schedule": "constant", "warmup_epochs": 0})
    summary = _sweep(spec, store, tmp_path, mnist_ref, run_id="pbt")
    trials = store.run_trials("pbt")
    assert len(trials) == 3 and all(t["status"] == "completed" for t in trials), [t.get("error") for t in trials]
    for t in trials:
        # A trial that exploits another continues from that trial's (possibly later) checkpoint, so its epoch
        # numbers may skip ahead, but it starts at 1, ends at the budget, and records each epoch once.
        epochs = [e["epoch"] for e in store.epochs(t["id"])]
        assert epochs[0] == 1 and epochs[-1] == 4 and epochs == sorted(set(epochs)), epochs
        # every checkpoint is kept during the sweep (exploits need them), the latest alone after it
        latest = Path(t["checkpoint"])
        assert latest.is_dir() and list(latest.parent.glob("checkpoint_*")) == [latest]
        assert load_checkpoint(latest)["epoch"] == 3  # 0-based: the 4th epoch
    assert summary.test.get("test_acc") is not None


def test_a_diverging_trial_fails_with_its_error_and_the_sweep_goes_on(tmp_path, store, mnist_ref):
    spec = _spec(tmp_path, name="nan", budget={"epochs": 2, "samples": 1}, scheduler={"type": "fifo"},
                 search={"algorithm": "grid"}, space={"lr": {"grid": [0.002, 10.0]}},
                 # bf16: where a diverging loss stays finite (jobs.loop.check_diverged; fp32's NaN is tested with the loop)
                fixed={"model": "cnn", "batch_size": 50, "optimizer": "sgd", "momentum": 0.0, "schedule": "constant",
                        "warmup_epochs": 0, "precision": "bf16"})
    summary = _sweep(spec, store, tmp_path, mnist_ref, run_id="nan")
    by_lr = {t["params"]["lr"]: t for t in store.run_trials("nan")}
    bad, good = by_lr[10.0], by_lr[0.002]
    assert bad["status"] == "failed" and bad["error"].startswith("TrainingDiverged: training loss"), bad
    assert bad["error"].endswith("lower --lr"), bad
    assert store.epochs(bad["id"]) == [] and bad.get("best_val_acc") is None  # nothing recorded as a result
    assert good["status"] == "completed" and good["epochs_done"] == 2
    assert good["runtime"]["precision"] == "bf16" and good["runtime"]["device"] == "cpu"  # what the trial ran on
    assert summary.counts == {"completed": 1, "failed": 1} and summary.best_trial == good["id"]


def test_redis_down_mid_sweep_training_goes_on_and_nothing_is_lost(tmp_path, mnist_ref):
    """The store's server stopped for 20 s while trials train, then restarted: writes made meanwhile are kept,
    flushed when it is back, and the store ends complete."""
    import threading

    from tests.conftest import RedisServer

    server = RedisServer(tmp_path / "redis", persist=True).start()
    try:
        store = ResultStore.from_url(server.url)
        spec = _spec(tmp_path, name="outage", budget={"epochs": 10, "samples": 3}, scheduler={"type": "fifo"},
                     max_concurrent=1)
        store.start_run("out", kind="sweep", name=spec.name, dataset="mnist", labels="fine", config=spec.model_dump())
        done: dict = {}
        tune = search_spaces.to_tune(spec)
        sweep = threading.Thread(target=lambda: done.update(s=run_sweep(spec, tune, store, "out", mnist_ref, str(tmp_path / "exp"))))
        sweep.start()
        deadline = time.monotonic() + 120
        while not any(t.get("epochs_done") for t in store.run_trials("out")):
            assert time.monotonic() < deadline and sweep.is_alive()
            time.sleep(0.2)
        server.stop()
        down_at = time.time()
        time.sleep(20)
        assert sweep.is_alive()  # training did not stop with the store
        up_at = time.time()
        server.start()  # same port, same append-only file
        sweep.join(300)
        assert not sweep.is_alive() and done["s"].counts == {"completed": 3}
        trials = store.run_trials("out")
        assert len(trials) == 3 and all(t["status"] == "completed" for t in trials)
        epochs = [e for t in trials for e in store.epochs(t["id"])]
        for t in trials:
            assert [e["epoch"] for e in store.epochs(t["id"])] == list(range(1, 11))
        # epochs reported while the server was down (Tune's timestamps) reached the store after it came back
        assert any(down_at <= e["timestamp"] <= up_at for e in epochs), [e["timestamp"] for e in epochs]
        assert not list((tmp_path / "exp").rglob("tunelab-unwritten-*"))  # nothing had to be spilled
    finally:
        server.stop()


def _fake_trial_dir(exp: Path, tune_id: str, epochs: list[int], when: list[int]) -> Path:
    """A trial folder as Tune leaves it: result.json (one line per report, `timestamp` in whole seconds)."""
    d = exp / f"_trainable_{tune_id}_0_lr=0.001_2026-12-02_10-00-00"
    d.mkdir(parents=True)
    (d / "result.json").write_text("".join(json.dumps({
        "trial_id": tune_id, "epoch": e, "epochs": 4, "val_acc": 0.5 + e / 10, "timestamp": t,
        "config": {"lr": 0.001}}) + "\n" for e, t in zip(epochs, when)))
    return d


def test_import_fails_a_trial_only_for_an_error_nothing_was_reported_after(tmp_path, store):
    """Tune keeps a trial's error.txt after a retry outlived the error (its node was lost, say): an import says
    `stopped` for such a trial that ASHA stopped early, and `failed` only when the error came after its last report."""
    from tunelab.jobs.importer import import_dir
    from tunelab.jobs.manifest import write_manifest

    spec = _spec(tmp_path, name="imp", budget={"epochs": 4, "samples": 2})
    exp = tmp_path / "exp" / "imp"
    exp.mkdir(parents=True)
    write_manifest(str(exp), run_id="imp", kind="sweep", name="imp", dataset="mnist", labels="fine",
                   config=spec.model_dump(), started=1796200000.0, storage_path=str(tmp_path / "exp"),
                   status="completed", ended=1796200100.0)
    def stamp(t: int) -> str:  # how Tune heads each failure in error.txt: local time, to the second
        return time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(t))

    outlived = _fake_trial_dir(exp, "aaaaa_00000", [1, 2], [1796200010, 1796200040])
    # lost after epoch 1; epoch 2 came after the retry. (A resume rewrites the files: their mtimes say nothing.)
    (outlived / "error.txt").write_text(f"Failure # 1 (occurred at {stamp(1796200020)})\nActorDiedError: the "
                                        "actor's node was terminated\n")
    died = _fake_trial_dir(exp, "aaaaa_00001", [1, 2], [1796200010, 1796200040])
    (died / "error.txt").write_text(f"Failure # 1 (occurred at {stamp(1796200020)})\nActorDiedError: lost\n"
                                    f"Failure # 2 (occurred at {stamp(1796200040)})\nRuntimeError: out of retries\n")
    assert import_dir(tmp_path / "exp", store) == ["imp"]
    a, b = store.get_trial("imp-aaaaa_00000"), store.get_trial("imp-aaaaa_00001")
    assert (a["status"], a.get("error")) == ("stopped", None)
    assert b["status"] == "failed" and b["error"] == "RuntimeError: out of retries"


def test_a_resume_gives_a_trial_the_checkpoint_tunes_saved_state_names(tmp_path, caplog):
    """A driver killed after Tune deleted a trial's older checkpoint but before Tune saved its state again: the saved
    state names a checkpoint that is gone. Before the resume the trial's newest checkpoint is copied under that name."""
    from tunelab.jobs.sweep import restore_lost_checkpoints

    exp = tmp_path / "exp"
    d = _fake_trial_dir(exp, "bbbbb_00000", [1, 2, 3], [1, 2, 3])
    (d / "checkpoint_000002").mkdir()
    (d / "checkpoint_000002" / "checkpoint.pt").write_bytes(b"epoch 3")
    kept = _fake_trial_dir(exp, "bbbbb_00001", [1], [1])
    (kept / "checkpoint_000000").mkdir()
    state = {"trial_data": [
        [json.dumps({"trial_id": "bbbbb_00000"}), json.dumps({"last_result": {"checkpoint_dir_name": "checkpoint_000001"}})],
        [json.dumps({"trial_id": "bbbbb_00001"}), json.dumps({"last_result": {"checkpoint_dir_name": "checkpoint_000000"}})],
    ]}
    (exp / "experiment_state-2026-12-02_10-00-00.json").write_text(json.dumps(state))
    with caplog.at_level("WARNING", logger="tunelab"):
        assert restore_lost_checkpoints(str(exp)) == ["bbbbb_00000: checkpoint_000001 -> checkpoint_000002"]
    assert (d / "checkpoint_000001" / "checkpoint.pt").read_bytes() == b"epoch 3"  # continues from where it was
    assert "names checkpoint_000001, deleted after that state was saved; it continues from checkpoint_000002" in caplog.text
    assert restore_lost_checkpoints(str(exp)) == []  # nothing left to mend
