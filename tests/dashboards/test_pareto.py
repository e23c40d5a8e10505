"""Cost-aware leaderboards: which trials are Pareto-optimal for validation accuracy against parameters, training
seconds and inference images/s, on a board filled through the store API; the same marks and filter in the view, the
JSON API, the Python API and the CLI (table and --json)."""

import json
import re

import pytest
from fastapi.testclient import TestClient

import tunelab
from tests.conftest import in_process
from tests.dashboards.conftest import NOT_PLOTLY_SVG
from tunelab.dashboards import views
from tunelab.dashboards.web import create_app

BOARD = {"fine": {"val": "val_acc", "test": "test_acc"}}
# trial -> (val_acc, parameters, training seconds, inference images/s); None: the cost was never reported
TRIALS = {
    "a": (0.95, 100_000, 10.0, 5_000.0),  # the most accurate of those with every cost
    "b": (0.90, 200_000, 20.0, 4_000.0),  # dominated by a on everything
    "c": (0.90, 50_000, 20.0, 4_000.0),  # fewer parameters than a: optimal
    "d": (0.90, 50_000, 20.0, 4_000.0),  # c's exact tie: ties do not dominate each other, both optimal
    "e": (0.85, 50_000, 20.0, 4_000.0),  # c's costs, less accurate: dominated by c (and d)
    "f": (0.80, 20_000, 30.0, None),  # fewest parameters (no inference figure: compared on the rest): optimal
    "g": (0.80, 20_000, 40.0, None),  # f with more training seconds: dominated by f
    "h": (0.94, 150_000, 5.0, None),  # trains fastest: optimal
    "i": (0.70, 300_000, None, 90_000.0),  # fastest inference: optimal (f lacks an inference figure to beat it with)
    "l": (0.60, 400_000, None, 80_000.0),  # i is better on every cost l has: dominated
    "j": (0.96, None, None, None),  # no costs: compared on accuracy alone, the best, so optimal; dominates nobody
}
PARETO = {"a", "c", "d", "f", "h", "i", "j"}
RANKED = ["j", "a", "h", "b", "c", "d", "e", "f", "g", "i", "l"]  # by validation accuracy


def fill(store) -> None:
    store.start_run("cost", kind="sweep", name="costs", dataset="mnist", labels="fine", config={})
    for name, (val, params, seconds, infer) in TRIALS.items():
        tid = f"cost-{name}"
        store.start_trial(tid, run_id="cost", model=f"m{name}", family="cnn", dataset="mnist", labels="fine",
                          boards=BOARD, params={"lr": 0.01})
        record = {"epoch": 1, "val_acc": val, "images_per_s": 1000.0}
        for key, value in (("params", params), ("time_total_s", seconds), ("infer_images_per_s", infer)):
            if value is not None:
                record[key] = value
        store.record_epoch(tid, record)
        store.finish_trial(tid, "completed")
    store.finish_run("cost", "completed")


def _names(rows) -> list[str]:
    return [(r["trial_id"] if isinstance(r, dict) else r.trial_id).removeprefix("cost-") for r in rows]


def _tie_order(names: list[str]) -> list[str]:
    # b, c, d share 0.90 and f, g 0.80, with no test accuracy: their order among themselves is the store's
    return [n if n not in "bcdfg" else "·" for n in names]


def test_pareto_marks_follow_the_rule_over_the_whole_board(store):
    fill(store)
    assert store.get_trial("cost-a")["infer_images_per_s"] == 5_000.0  # the cost lands on the trial hash
    assert "infer_images_per_s" not in store.get_trial("cost-f")
    rows = views.leaderboard(store, "mnist", limit=None)
    assert _tie_order(_names(rows)) == _tie_order(RANKED)
    assert {n for n, r in zip(_names(rows), rows) if r.pareto} == PARETO
    by = {n: r for n, r in zip(_names(rows), rows)}
    assert (by["a"].n_params, by["a"].train_time_s, by["a"].infer_images_per_s) == (100_000, 10.0, 5_000.0)
    assert by["i"].infer_images_per_s == 90_000.0 and by["i"].train_time_s is None and by["j"].n_params is None

    # the marks are the whole board's: a page of 2 rows, or a filter, does not change them
    top = views.leaderboard(store, "mnist", limit=2)
    assert [(r.rank, r.pareto) for r in top] == [(1, True), (2, True)]
    g = next(r for r in views.leaderboard(store, "mnist", limit=None, sort="n_params") if r.trial_id == "cost-g")
    assert not g.pareto

    # pareto=True keeps only the optimal trials, with their places on the whole board
    front = views.leaderboard(store, "mnist", limit=None, pareto=True)
    assert set(_names(front)) == PARETO and all(r.pareto for r in front)
    assert [r.rank for r in front] == sorted(r.rank for r in rows if r.pareto)
    assert [r.rank for r in views.leaderboard(store, "mnist", pareto=True, limit=2)] == [1, 2]

    # a trial that arrives and dominates others takes their marks away
    store.start_trial("cost-k", run_id="cost", model="mk", family="cnn", dataset="mnist", labels="fine", boards=BOARD)
    store.record_epoch("cost-k", {"epoch": 1, "val_acc": 0.99, "params": 10_000, "time_total_s": 1.0,
                                  "infer_images_per_s": 100_000.0})
    cache = views.BoardCache()
    assert _names(views.leaderboard(store, "mnist", pareto=True, cache=cache)) == ["k"]  # j too: k is more accurate
    assert cache.pareto(cache.board_index(store, "mnist", "fine")) == {"cost-k"}


def test_pareto_front_on_rows_alone():
    rows = [{"trial_id": n, "val_acc": v, "n_params": p, "train_time_s": s, "infer_images_per_s": i}
            for n, (v, p, s, i) in TRIALS.items()]
    assert views.pareto_front(rows) == PARETO
    assert views.pareto_front([]) == set()
    # a lacks training seconds: compared on parameters (equal) and accuracy (equal), nobody is better; b and c
    # cannot be dominated by a (it lacks a cost they have), and c trains faster than b
    rows = [{"trial_id": "a", "val_acc": 0.9, "n_params": 10}, {"trial_id": "b", "val_acc": 0.9, "n_params": 10,
                                                                   "train_time_s": 5.0},
            {"trial_id": "c", "val_acc": 0.9, "n_params": 10, "train_time_s": 4.0}]
    assert views.pareto_front(rows) == {"a", "c"}


@pytest.fixture
def client(store):
    fill(store)
    with TestClient(create_app(lambda: store)) as c:
        yield c


def test_api_filter_python_api_and_cli_agree(client, redis_server, monkeypatch, capsys):
    every = client.get("/api/leaderboard", params={"dataset": "mnist"}).json()
    assert {n for n, r in zip(_names(every), every) if r["pareto"]} == PARETO
    front = client.get("/api/leaderboard", params={"dataset": "mnist", "pareto": "true"}).json()
    assert set(_names(front)) == PARETO and [r["rank"] for r in front] == [r["rank"] for r in every if r["pareto"]]
    by_params = client.get("/api/leaderboard?dataset=mnist&pareto=true&sort=n_params&order=asc").json()
    assert [r["n_params"] for r in by_params] == [20_000, 50_000, 50_000, 100_000, 150_000, 300_000, None]
    assert client.get("/api/leaderboard?dataset=mnist&pareto=maybe").status_code == 422

    monkeypatch.setenv("TUNELAB_REDIS_URL", redis_server.url)
    assert [r.model_dump(mode="json") for r in tunelab.leaderboard("mnist", limit=100, pareto=True)] == front

    env = {"TUNELAB_REDIS_URL": redis_server.url}
    as_json = in_process(monkeypatch, capsys, env, "leaderboard", "--dataset", "mnist", "--pareto", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == front
    table = in_process(monkeypatch, capsys, env, "leaderboard", "--dataset", "mnist", "--pareto")
    assert table.returncode == 0, table.stderr
    listed = {n for n in TRIALS if f" m{n} " in table.stdout}
    assert listed == PARETO, table.stdout  # only the non-dominated trials
    full = in_process(monkeypatch, capsys, env, "leaderboard", "--dataset", "mnist")
    starred = {n for n in TRIALS for line in full.stdout.splitlines() if f" m{n} " in line and "★" in line}
    assert starred == PARETO, full.stdout  # every trial listed, the optimal ones marked
    assert "90,000" in full.stdout  # the inference column


def test_leaderboard_page_draws_accuracy_against_parameters_with_the_front(store, browser):
    from tests.dashboards.conftest import XSS, LiveServer
    from tests.dashboards.test_browser import ARTIFACTS

    fill(store)
    # a dominated trial (a beats it on everything) whose model name would be markup if it were not escaped
    store.start_trial("cost-x", run_id="cost", model=XSS, family="cnn", dataset="mnist", labels="fine", boards=BOARD)
    store.record_epoch("cost-x", {"epoch": 1, "val_acc": 0.5, "params": 500_000, "time_total_s": 50.0,
                                  "infer_images_per_s": 100.0})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(store) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            dialogs: list[str] = []
            errors: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/leaderboard?dataset=mnist")
            page.wait_for_selector("#chart-pareto[data-drawn]", timeout=30_000)
            traces = page.locator("#chart-pareto .scatterlayer .trace")
            assert traces.count() == 2
            # grey: the dominated trials with a parameter count (b, e, g, l, x); the front: the optimal ones with one
            # (every optimal trial but j, which has no parameter count), joined by a line
            assert traces.nth(0).locator("path.point").count() == 5
            assert traces.nth(1).locator("path.point").count() == 6
            line = traces.nth(1).locator("path.js-line").get_attribute("d") or ""
            xs = [float(x) for x in re.findall(r"[ML]([\d.]+),", line)]
            # f, c and d (one place), a, h, i: joined from the fewest parameters to the most
            assert len(set(xs)) == 5 and xs == sorted(xs), line
            assert page.evaluate("document.getElementById('chart-pareto').layout.xaxis.type") == "log"

            # hovering a point names the trial and its costs; stored strings stay text
            def hover_text(point) -> str:
                page.mouse.move(0, 0)  # off the chart: the last label goes first
                page.wait_for_selector("#chart-pareto .hoverlayer .hovertext", state="detached", timeout=10_000)
                box = point.bounding_box()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_selector("#chart-pareto .hoverlayer .hovertext", timeout=10_000)
                return page.locator("#chart-pareto .hoverlayer .hovertext").text_content()

            star = hover_text(traces.nth(1).locator("path.point").nth(3))  # the front by parameters: f, c/d, a, ...
            assert "ma · trial a" in star and "100,000 parameters" in star and "5,000 inference images/s" in star, star
            grey = hover_text(traces.nth(0).locator("path.point").last)
            assert XSS in grey, grey  # the model name, as text
            assert page.locator(f"img, {NOT_PLOTLY_SVG}, [onerror], [onload]").count() == 0

            stars = page.locator("#board tbody tr").evaluate_all(
                "rows => rows.filter(r => r.querySelector('td.pareto').textContent.trim() === '★')"
                "            .map(r => r.dataset.trial)")
            assert {t.removeprefix("cost-") for t in stars} == PARETO
            page.screenshot(path=str(ARTIFACTS / "leaderboard-pareto.png"), full_page=True)

            page.check("input[name=pareto]")  # the filter submits on change
            page.wait_for_url("**pareto=true**")
            page.wait_for_selector("#chart-pareto[data-drawn]", timeout=30_000)
            shown = page.locator("#board tbody tr").evaluate_all("rows => rows.map(r => r.dataset.trial)")
            assert {t.removeprefix("cost-") for t in shown} == PARETO
            assert page.locator("#chart-pareto .scatterlayer path.point").count() == 6  # the front alone
            assert dialogs == [] and errors == []
        finally:
            page.close()  # before the server stops: its event stream ends with the page
