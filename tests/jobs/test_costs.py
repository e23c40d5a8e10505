"""What a trial costs reaches the store: a real training run measures its trained model's inference throughput once,
at its end, and the figure lands on the trial, on the leaderboard, and again when the store is rebuilt from the
experiment folder; a sweep trial's (a Tune result) takes the same path."""

import pytest

import tunelab
from tunelab.jobs.dataset_files import import_dir as import_data
from tunelab.jobs.importer import import_dir as import_results
from tunelab.jobs.trials import result_metrics


@pytest.fixture
def user_env(tmp_path, mnist_source, redis_server, store, monkeypatch):
    """A user with real MNIST imported into a fresh data dir, the test Redis as the store, runs in this process."""
    root = tmp_path / "data"
    assert import_data(mnist_source, root) == ["mnist"]
    env = {"TUNELAB_DATA_DIR": str(root), "TUNELAB_REDIS_URL": redis_server.url, "RAY_ADDRESS": "",
           "TUNELAB_STORAGE": str(tmp_path / "experiments")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_a_training_run_reports_its_inference_throughput_to_the_trial_and_board(user_env, store):
    run = tunelab.train(dataset="mnist", model="cnn", epochs=2, subset=1000, precision="fp32")
    assert run.status == "completed", run.error
    trial = store.get_trial(run.trial_id)
    infer = trial["infer_images_per_s"]
    assert infer > 0 and trial["infer_batch_size"] == 100  # the 100 validation images carved from the 1,000
    first, last = store.epochs(run.trial_id)
    assert "infer_images_per_s" not in first and last["infer_images_per_s"] == infer  # measured once, at the end

    row = tunelab.leaderboard("mnist")[0]
    assert row.trial_id == run.trial_id and row.infer_images_per_s == infer
    assert row.pareto and row.n_params == 431_242 and row.train_time_s > 0  # alone on its board: optimal

    # the store rebuilt from the experiment folder alone (the epoch history in the checkpoint) keeps it
    store.r.flushdb()
    store.check()
    assert import_results(user_env["TUNELAB_STORAGE"], store) == [run.run_id]
    assert store.get_trial(run.trial_id)["infer_images_per_s"] == infer
    assert tunelab.leaderboard("mnist", pareto=True)[0].infer_images_per_s == infer


def test_a_sweep_trials_tune_result_carries_it_to_the_trial(store):
    # what the sweep's Tune callback (and the importer, from result.json) writes: the numbers of a Tune result
    store.start_run("sw", kind="sweep", name="sw", dataset="mnist", labels="fine", config={})
    store.start_trial("sw-00000", run_id="sw", model="cnn", dataset="mnist", labels="fine",
                      boards={"fine": {"val": "val_acc", "test": "test_acc"}})
    result = {"epoch": 3, "epochs": 3, "val_acc": 0.97, "params": 431_242, "time_total_s": 30.5,
              "infer_images_per_s": 2_345.0, "infer_batch_size": 1024, "done": True, "trial_id": "00000",
              "config": {"lr": 0.01}, "checkpoint_dir_name": "checkpoint_000002"}
    store.record_epoch("sw-00000", result_metrics(result))
    trial = store.get_trial("sw-00000")
    assert (trial["infer_images_per_s"], trial["infer_batch_size"]) == (2_345.0, 1024)
    assert store.leaderboard("mnist")[0]["infer_images_per_s"] == 2_345.0
