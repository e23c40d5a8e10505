"""Parameter importance of a sweep (dashboards/importance.py): Optuna's PED-ANOVA and fANOVA over the trials in a
real Redis store, filled through the store API as sweeps fill it; the JSON API, the CLI, the sweep page in a real
headless Chromium, and a real sweep end to end."""

from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from tests.conftest import in_process
from tests.dashboards.conftest import ARTIFACTS, LiveServer, add_trial
from tunelab.dashboards import importance
from tunelab.dashboards.views import ViewError
from tunelab.dashboards.web import create_app
from tunelab.results import keys

EPOCHS = 3
SPACE = {"lr": {"loguniform": [1e-4, 1e-1]}, "model": {"choice": ["cnn", "cnn_bn"]},
         "weight_decay": {"uniform": [0.0, 0.001]}}


def _accuracy(driver: str, lr: float, model: str, noise: float) -> float:
    """Validation accuracy driven by one parameter, plus a little noise that no parameter explains."""
    if driver == "lr":  # best near lr = 10^-2.5, falling off by 6 points a decade: log-scaled
        return 0.95 - 0.06 * abs(math.log10(lr) + 2.5) + noise
    return (0.95 if model == "cnn_bn" else 0.80) + noise  # categorical


def make_sweep(store, run_id="sw", name="imp", *, n=24, driver="lr", stopped=0, failed=0, failed_after=0,
               space=None, seed=7) -> None:
    """A sweep as the Tune callback writes it: `n` trials that ran the whole budget, then `stopped` early-stopped
    after one epoch (ASHA), `failed` that failed before any epoch, `failed_after` that failed after one."""
    space = space or SPACE
    store.start_run(run_id, kind="sweep", name=name, dataset="mnist", labels="fine",
                    config={"name": name, "budget": {"epochs": EPOCHS, "samples": n}, "space": space,
                            "fixed": {"batch_size": 128}})
    rng = random.Random(seed)
    for i in range(n + stopped + failed + failed_after):
        lr = math.exp(rng.uniform(math.log(1e-4), math.log(1e-1)))
        model, wd = ("cnn", "cnn_bn")[i % 2], rng.uniform(0.0, 0.001)
        params = {k: v for k, v in {"lr": lr, "model": model, "weight_decay": wd}.items() if k in space}
        params["batch_size"] = 128  # fixed, not searched: never ranked
        final = _accuracy(driver, lr, model, rng.uniform(0.0, 0.01))
        tid = f"{run_id}-{i:05d}"
        if i < n:
            add_trial(store, run_id, tid, model=model, params=params, accs=(final - 0.1, final - 0.05, final))
        elif i < n + stopped:
            add_trial(store, run_id, tid, model=model, params=params, accs=(final - 0.1,), status="stopped")
        elif i < n + stopped + failed:
            store.start_trial(tid, run_id=run_id, model=model, dataset="mnist", labels="fine", boards={}, params=params)
            store.finish_trial(tid, "failed", error="RuntimeError: out of memory")
        else:
            add_trial(store, run_id, tid, model=model, params=params, accs=(final - 0.1,), status="failed")
    store.finish_run(run_id, "completed")


@pytest.mark.parametrize("evaluator", ["ped-anova", "fanova"])
@pytest.mark.parametrize("driver", ["lr", "model"])
def test_the_parameter_that_drives_accuracy_ranks_first(store, evaluator, driver):
    make_sweep(store, driver=driver)
    found = importance.sweep_importance(store, "sw", evaluator)
    ranked = [p.param for p in found.importances]
    assert ranked[0] == driver, found.importances
    assert sorted(ranked) == ["lr", "model", "weight_decay"]  # the searched ones only: batch_size was fixed
    shares = [p.importance for p in found.importances]
    assert shares == sorted(shares, reverse=True) and math.isclose(sum(shares), 1.0, abs_tol=1e-4)
    assert shares[0] > 2 * shares[1]  # clearly first, not by a hair
    assert (found.run_id, found.evaluator, found.metric, found.early_stopped) == ("sw", evaluator, "best_val_acc",
                                                                                  "reached")
    assert found.trials_used == 24 and found.trials_left_out == 0


def test_the_recipe_samplers_become_optuna_distributions():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space = {"model": {"choice": ["cnn", "cnn_bn"]}, "augment": {"grid": ["none", "crop:2"]},
             "lr": {"loguniform": [1e-4, 1e-1]}, "wd": {"qloguniform": [1e-5, 1e-3, 1e-5]},
             "dropout": {"uniform": [0.0, 0.5]}, "freeze_epochs": {"randint": [0, 3]},
             "mix": {"choice": [[1, 2], None]}}
    dists = {k: importance._distribution(k, v) for k, v in space.items()}
    # one trial inside the space, one as PBT leaves it: perturbed past the recipe's range
    picked = [({"model": "cnn", "augment": "none", "lr": 1e-3, "wd": 1e-4, "dropout": 0.1, "freeze_epochs": 2,
                "mix": [1, 2]}, 0.9),
              ({"model": "cnn_bn", "augment": "crop:2", "lr": 0.12, "wd": 1e-5, "dropout": 0.6, "freeze_epochs": 0,
                "mix": None}, 0.8)]
    built = importance._optuna_distributions(picked, dists)
    assert built["model"] == CategoricalDistribution(["cnn", "cnn_bn"])
    assert built["augment"] == CategoricalDistribution(["none", "crop:2"])
    assert built["mix"] == CategoricalDistribution(["[1, 2]", None])  # a list choice as its JSON
    assert built["lr"] == FloatDistribution(1e-4, 0.12, log=True)  # widened to the perturbed value
    assert built["wd"] == FloatDistribution(1e-5, 1e-3, log=True)
    assert built["dropout"] == FloatDistribution(0.0, 0.6)
    assert built["freeze_epochs"] == IntDistribution(0, 2)  # Tune's randint excludes its upper end


def test_early_stopped_trials_count_at_the_epoch_they_reached_or_are_left_out(store):
    make_sweep(store, n=16, stopped=8, failed=2, failed_after=1)
    reached = importance.sweep_importance(store, "sw", early_stopped="reached")
    assert (reached.trials_used, reached.early_stopped_used, reached.trials_left_out) == (25, 9, 2)
    assert reached.left_out == {"no_result": 2}
    assert "16 trials ran the 3-epoch budget, 9 ended short of it" in reached.note
    assert "count at the best epoch they reached" in reached.note
    assert "Left out: 2 without a validation result." in reached.note

    excluded = importance.sweep_importance(store, "sw", early_stopped="exclude")
    assert (excluded.trials_used, excluded.early_stopped_used, excluded.trials_left_out) == (16, 0, 11)
    assert excluded.left_out == {"early_stopped": 9, "no_result": 2}
    assert "are left out" in excluded.note and "9 ended short of the budget" in excluded.note
    assert "Fewer than 20 trials" in excluded.note  # 16: a rough guide
    assert excluded.importances[0].param == "lr"


def test_too_few_trials_is_one_line_saying_how_many_are_needed(store):
    make_sweep(store, n=5, failed=3)
    with pytest.raises(ViewError) as e:
        importance.sweep_importance(store, "sw", "ped-anova")
    msg = str(e.value)
    assert "\n" not in msg and "PED-ANOVA needs at least 6" in msg and "sweep 'imp' has 5" in msg, msg

    store.r.flushdb()
    make_sweep(store, n=4, stopped=4)
    with pytest.raises(ViewError) as e:
        importance.sweep_importance(store, "sw", "fanova")
    msg = str(e.value)
    assert "fANOVA needs at least 10" in msg and "has 8" in msg and "PED-ANOVA needs 6" in msg, msg
    with pytest.raises(ViewError, match="has 4 \\(4 more ended short of the budget: count them"):
        importance.sweep_importance(store, "sw", "ped-anova", early_stopped="exclude")
    assert importance.sweep_importance(store, "sw", "ped-anova").trials_used == 8  # counted, it is enough


def test_one_searched_parameter_gets_all_of_it(store):
    make_sweep(store, n=8, space={"lr": SPACE["lr"]})
    found = importance.sweep_importance(store, "sw")
    assert [(p.param, p.importance) for p in found.importances] == [("lr", 1.0)]


def test_what_cannot_be_ranked_is_refused_in_one_line(store):
    store.start_run("tr", kind="train", name="one", dataset="mnist", labels="fine", config={"epochs": 2})
    add_trial(store, "tr", "tr-t0", params={"lr": 0.1})
    with pytest.raises(ViewError, match="run 'tr' is a training run, not a sweep"):
        importance.sweep_importance(store, "tr")
    store.start_run("flat", kind="sweep", name="flat", dataset="mnist", labels="fine", config={"space": SPACE})
    for i in range(8):
        add_trial(store, "flat", f"flat-{i}", params={"lr": 10 ** -(1 + i / 3), "model": "cnn", "weight_decay": 0.0},
                  accs=(0.5, 0.9, 0.98))
    with pytest.raises(ViewError, match="all 8 trials .* reached the same validation accuracy \\(98.00%\\)"):
        importance.sweep_importance(store, "flat")
    with pytest.raises(ViewError, match="unknown importance evaluator 'shap'; choose one of: ped-anova, fanova"):
        importance.sweep_importance(store, "flat", "shap")
    assert importance.sweep_importance(store, "nope") is None


def test_the_api_route_and_the_chart_it_draws(store):
    make_sweep(store, stopped=4)
    with TestClient(create_app(lambda: store)) as c:
        body = c.get("/api/runs/sw/importance").json()
        assert body == importance.sweep_importance(store, "sw").model_dump(mode="json")
        assert body["importances"][0]["param"] == "lr" and body["trials_used"] == 28
        excl = c.get("/api/runs/sw/importance?evaluator=fanova&early_stopped=exclude").json()
        assert (excl["evaluator"], excl["trials_used"], excl["left_out"]) == ("fanova", 24, {"early_stopped": 4})

        chart = c.get("/api/runs/sw/importance/chart").json()
        (bars,) = chart["importance"]["data"]
        assert bars["type"] == "bar" and bars["orientation"] == "h"
        assert bars["y"] == [p["param"] for p in body["importances"]]  # most important first (axis reversed)
        assert chart["importance"]["layout"]["yaxis"]["autorange"] == "reversed"
        assert chart["note"] == body["note"]

        assert c.get("/api/runs/nope/importance").status_code == 404
        assert c.get("/api/runs/nope/importance/chart").status_code == 404
        bad = c.get("/api/runs/sw/importance?evaluator=shap")
        assert bad.status_code == 422 and "choose one of: ped-anova, fanova" in bad.json()["detail"]

        store.start_run("few", kind="sweep", name="few", dataset="mnist", labels="fine", config={"space": SPACE})
        add_trial(store, "few", "few-0", params={"lr": 0.01, "model": "cnn", "weight_decay": 0.0})
        few = c.get("/api/runs/few/importance")
        assert few.status_code == 422 and few.json()["detail"].startswith("too few trials for parameter importance")
        chart = c.get("/api/runs/few/importance/chart").json()  # the page's chart says why instead
        assert chart["note"] == "" and "too few trials" in chart["importance"]["layout"]["annotations"][0]["text"]


def test_the_chart_escapes_parameter_names(store):
    evil = "<img src=x onerror=alert(1)>"
    make_sweep(store, space={"lr": SPACE["lr"], "model": SPACE["model"]})
    for t in store.run_trials("sw"):  # a store written by hand: a searched key named like markup
        store.r.hset(keys.trial(t["id"]), "params", json.dumps({"lr": t["params"]["lr"], evil: t["params"]["model"]}))
    store.update_run("sw", config={"space": {"lr": SPACE["lr"], evil: SPACE["model"]}})
    with TestClient(create_app(lambda: store)) as c:
        chart = c.get("/api/runs/sw/importance/chart").json()
    assert "&lt;img src=x onerror=alert(1)&gt;" in chart["importance"]["data"][0]["y"]
    assert evil not in str(chart["importance"])


def _env(redis_server) -> dict:
    return {"TUNELAB_REDIS_URL": redis_server.url}


def test_the_cli_prints_one_line_per_parameter_and_the_policy(store, redis_server, monkeypatch, capsys):
    make_sweep(store, stopped=4)
    res = in_process(monkeypatch, capsys, _env(redis_server), "sweep", "show", "imp", "--importance")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 4, lines  # three searched parameters, then the note
    ranked = [p.param for p in importance.sweep_importance(store, "sw").importances]
    assert [ln.split()[0] for ln in lines[:3]] == ranked
    assert lines[0].split()[0] == "lr" and 0.0 <= float(lines[0].split()[1]) <= 1.0
    assert lines[3].startswith("PED-ANOVA (the best 14 trials against all 28)") and "4 ended short" in lines[3]

    res = in_process(monkeypatch, capsys, _env(redis_server), "sweep", "show", "sw", "--importance", "--evaluator",
                     "fanova", "--exclude-early-stopped", "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == importance.sweep_importance(
        store, "sw", "fanova", "exclude").model_dump(mode="json")


def test_the_cli_refuses_too_few_trials_in_one_line(store, redis_server, monkeypatch, capsys):
    make_sweep(store, n=3)
    res = in_process(monkeypatch, capsys, _env(redis_server), "sweep", "show", "imp", "--importance")
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith("error: too few trials for parameter importance: PED-ANOVA needs at least 6")
    res = in_process(monkeypatch, capsys, _env(redis_server), "sweep", "show", "imp", "--importance", "--evaluator",
                     "shap")
    assert res.returncode == 2 and "unknown importance evaluator 'shap'" in res.stderr


@contextmanager
def _page(browser, errors: list[str]):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page
    finally:
        page.close()  # before the server stops: its event stream ends with the page


def test_the_sweep_page_draws_the_importance_and_says_what_counted(store, browser):
    make_sweep(store, stopped=4)
    store.start_run("few", kind="sweep", name="few", dataset="mnist", labels="fine", config={"space": SPACE})
    add_trial(store, "few", "few-0", params={"lr": 0.01, "model": "cnn", "weight_decay": 0.0})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with LiveServer(store) as server, _page(browser, errors) as page:
        page.goto(server.url + "/runs/sw")
        page.wait_for_selector("#chart-importance[data-drawn]", timeout=30_000)
        bars = page.locator("#chart-importance .barlayer .point path")
        assert bars.count() == 3
        widths = bars.evaluate_all("ps => ps.map(p => p.getBBox().width)")
        assert widths[0] == max(widths) and widths[0] > 2 * sorted(widths)[-2]  # lr's bar, clearly the longest
        note = page.locator("#importance-note")
        said = note.inner_text()
        assert "4 ended short of it" in said and "count at the best epoch they reached" in said
        page.locator("#importance #chart-importance").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "sweep-importance.png"), full_page=True)

        page.click("#importance a.tab >> text=without early-stopped trials")
        page.wait_for_url("**early_stopped=exclude**")
        page.wait_for_function("document.querySelector('#importance-note').textContent.includes('are left out')",
                               timeout=30_000)
        assert "Left out: 4 ended short of the budget." in note.inner_text()

        page.goto(server.url + "/runs/few")  # too few trials: the chart says why
        page.wait_for_selector("#chart-importance[data-drawn]", timeout=30_000)
        assert "too few trials" in page.locator("#chart-importance .annotation-text").text_content()
        assert note.inner_text() == ""
    assert errors == []


@pytest.mark.slow
def test_a_real_sweep_ranks_its_searched_parameters_everywhere(tmp_path, mnist_root, redis_server, store, monkeypatch,
                                                               capsys):
    """mnist_smoke (model × log-scaled lr, ASHA) cut to 1,000 images and 2 epochs, 6 trials (PED-ANOVA's minimum),
    run by `tunelab sweep` (about 40 s here); then its importance through the Python API, the JSON API and the CLI."""
    import yaml

    from tests.conftest import ROOT, run_cli

    recipe = yaml.safe_load((ROOT / "search_spaces" / "mnist_smoke.yaml").read_text())
    recipe.update(subset=1000, budget={**recipe["budget"], "epochs": 2})
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(recipe))
    env = {"TUNELAB_DATA_DIR": str(mnist_root), "TUNELAB_REDIS_URL": redis_server.url, "RAY_ADDRESS": "",
           "TUNELAB_STORAGE": str(tmp_path / "exp")}
    res = run_cli("sweep", str(tmp_path / "smoke.yaml"), "--name", "imp-real", "--samples", "6", env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    import tunelab.api

    found = tunelab.api.importance("imp-real")
    run_id = found.run_id
    trials = store.run_trials(run_id)
    assert len(trials) == 6 and {p.param for p in found.importances} == {"model", "lr"}  # the recipe's space
    assert found.trials_used + found.trials_left_out == 6 and "params_outside_space" not in found.left_out
    assert found.early_stopped_used == sum(t["status"] != "completed" for t in trials if t.get("best_val_acc"))
    assert math.isclose(sum(p.importance for p in found.importances), 1.0, abs_tol=1e-4)
    assert "ran the 2-epoch budget" in found.note
    with TestClient(create_app(lambda: store)) as c:
        assert c.get(f"/api/runs/{run_id}/importance").json() == found.model_dump(mode="json")
    shown = in_process(monkeypatch, capsys, env, "sweep", "show", "imp-real", "--importance")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:2]] == [p.param for p in found.importances] and lines[2] == found.note
