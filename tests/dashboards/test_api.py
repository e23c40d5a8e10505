"""The dashboard's JSON API and pages over a real Redis store: same ranking as the CLI, filters and sorting,
charts built from the stored epochs, escaping, read-only, offline assets, and live events through pub/sub."""

import json
import threading
from html import unescape
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import in_process as _in_process
from tests.dashboards.conftest import RUNTIME, XSS, LiveServer, add_trial
from tunelab.dashboards.web import create_app


@pytest.fixture
def client(filled):
    store, facts = filled
    with TestClient(create_app(lambda: store)) as c:
        yield c, store, facts


def _ids(rows):
    return [r["trial_id"] for r in rows]


def test_leaderboard_api_ranks_like_the_cli(client, redis_server, monkeypatch, capsys):
    c, store, facts = client
    api = c.get("/api/leaderboard", params={"dataset": "mnist"}).json()
    assert _ids(api) == facts["mnist_order"] and [r["rank"] for r in api] == list(range(1, 8))
    cli = _in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": redis_server.url}, "leaderboard", "--dataset", "mnist",
                      "--json", "--limit", "100")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == api  # the same rows, field for field
    table = _in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": redis_server.url}, "leaderboard", "--dataset", "mnist")
    # the terminal table lists the trials in the same order
    positions = [table.stdout.index(f" {t.rsplit('-', 1)[-1]} ") for t in facts["mnist_order"]]
    assert positions == sorted(positions), table.stdout


def test_leaderboard_rows_carry_what_the_page_shows(client):
    c, _, _ = client
    rows = {r["trial_id"]: r for r in c.get("/api/leaderboard?dataset=mnist").json()}
    best = rows["sw-00001"]
    assert best["run_name"] == XSS and best["trial"] == "00001" and best["family"] == "cnn"
    assert best["test_acc"] == 0.96 and best["epochs"] == 3 and best["n_params"] == 431_242
    assert best["key_params"] == {"lr": 0.003, "batch_size": 64}  # a sweep trial: what was searched
    transfer = rows["tr-t0"]
    assert transfer["pretrained"] == "/w/lite0.pth" and transfer["family"] == "efficientnet"
    # a training run stores its whole config: only the usual hyperparameters are "key"
    assert transfer["key_params"] == {"optimizer": "adamw", "lr": 0.001, "batch_size": 64, "weight_decay": 0.0005,
                                      "schedule": "onecycle", "label_smoothing": 0.0, "freeze_epochs": 0}


@pytest.mark.parametrize("query,expected", [
    ({"family": "cnn"}, ["sw-00001", "sw-00005", "sw-00003"]),
    ({"augment": "crop:2"}, ["sw-00001", "sw-00000", "sw-00002"]),
    ({"pretrained": "yes"}, ["tr-t0"]),
    ({"pretrained": "no", "family": "resnet_cifar"}, ["sw-00000", "sw-00002", "sw-00004"]),
    ({"sort": "model", "order": "asc"}, ["sw-00001", "sw-00005", "sw-00003", "sw-00000", "sw-00002", "sw-00004", "tr-t0"]),
    ({"sort": "test_acc", "order": "desc"}, ["sw-00001", "tr-t0", "sw-00005", "sw-00000", "sw-00002", "sw-00003", "sw-00004"]),
    ({"sort": "rank", "order": "desc", "limit": 2}, ["sw-00004", "sw-00003"]),
])
def test_leaderboard_filters_and_sorts(client, query, expected):
    c, _, _ = client
    rows = c.get("/api/leaderboard", params={"dataset": "mnist", **query}).json()
    assert _ids(rows) == expected


def test_cifar100_has_fine_and_coarse_boards_and_bad_boards_are_refused(client):
    c, _, _ = client
    fine = c.get("/api/leaderboard?dataset=cifar100").json()
    coarse = c.get("/api/leaderboard?dataset=cifar100&label=coarse").json()
    assert _ids(fine) == _ids(coarse) == ["cf-t0"]
    assert (fine[0]["val_acc"], fine[0]["test_acc"]) == (0.2, 0.19)
    assert (coarse[0]["val_acc"], coarse[0]["test_acc"]) == (0.35, 0.33)
    assert [(b["dataset"], b["label"], b["trials"]) for b in c.get("/api/boards").json()] == [
        ("mnist", "fine", 7), ("cifar100", "fine", 1), ("cifar100", "coarse", 1)]
    for query, needle in [("dataset=mnist&label=coarse", "mnist has no 'coarse' labels"),
                          ("dataset=svhn", "unknown dataset 'svhn'"), ("dataset=mnist&sort=colour", "cannot sort by")]:
        r = c.get(f"/api/leaderboard?{query}")
        assert r.status_code == 422 and needle in r.json()["detail"]
    page = c.get("/leaderboard?dataset=cifar100&label=coarse")
    assert page.status_code == 200 and ">coarse</a>" in page.text and "cf-t0" in page.text


def test_sweep_detail_charts_and_trial_pages(client):
    c, _, _ = client
    d = c.get("/api/runs/sw").json()
    assert d["run"]["name"] == XSS and d["run"]["best_val_acc"] == 0.95
    assert [t["trial"] for t in d["trials"]] == ["00001", "00005", "00000", "00002", "00003", "00004"]
    charts = c.get("/api/runs/sw/charts").json()
    par = charts["parallel"]["data"][0]
    assert par["type"] == "parcoords"
    dims = {dim["label"]: dim for dim in par["dimensions"]}
    assert set(dims) == {"log10 lr", "augment", "batch_size", "val accuracy %"}  # lr spans 2.5 decades: log axis
    assert dims["augment"]["ticktext"] == ["crop:2", "none"] and len(dims["val accuracy %"]["values"]) == 6
    curves = charts["curves"]["data"]
    assert len(curves) == 6
    dashed = {tr["name"] for tr in curves if tr["line"].get("dash") == "dash"}
    assert dashed == {"00003 (stopped)", "00004 (stopped)"}  # early-stopped trials stay visible, dashed
    best = charts["best_so_far"]["data"][1]
    assert best["y"] == sorted(best["y"]) and best["y"][-1] == pytest.approx(95.0)
    assert {a["text"] for a in charts["params"]["layout"]["annotations"]} == {"lr", "augment", "batch_size"}

    t = c.get("/api/trials/sw-00001").json()
    assert t["run"]["id"] == "sw" and [e["epoch"] for e in t["epochs"]] == [1, 2, 3]
    tc = c.get("/api/trials/sw-00001/charts").json()
    assert [tr["name"] for tr in tc["accuracy"]["data"]] == ["val accuracy", "test accuracy"]
    assert tc["loss"]["data"][0]["y"] == pytest.approx([2.0, 1.0, 2 / 3])
    for url, needle in [("/runs/sw", 'href="/trials/sw-00004"'), ("/trials/sw-00001", "sw-00001"),
                        ("/runs/tr", 'href="/trials/tr-t0"'), ("/sweeps", 'href="/runs/sw"'), ("/runs", 'href="/runs/cf"')]:
        page = c.get(url)
        assert page.status_code == 200 and needle in page.text, url


def test_a_trial_page_and_its_json_say_what_it_ran_on(client):
    c, _, _ = client
    t = c.get("/api/trials/tr-t0").json()
    assert t["trial"]["runtime"] == RUNTIME and c.get("/api/runs/tr").json()["run"]["runtime"] == RUNTIME
    page = c.get("/trials/tr-t0").text
    assert 'id="runtime-precision">bf16, channels-last</dd>' in page
    device = page.split('id="runtime-device">', 1)[1].split("</dd>", 1)[0]
    assert device == ("NVIDIA H100 80GB HBM3 &lt;i&gt;, 4 workers × 8 threads, torch 2.14.1, CUDA 13.0")
    assert "runtime-precision" not in c.get("/trials/sw-00001").text  # recorded before runtimes were: nothing shown


def test_everything_from_the_store_is_escaped(client):
    c, store, _ = client
    evil = '<img src=x onerror="alert(2)">'
    store.start_run("evil", kind="sweep", name=XSS, dataset="mnist", labels="fine", config={"note": evil})
    add_trial(store, "evil", "evil-00000", model=evil, family=evil, augment=evil, params={"opt": evil, "lr": 0.1})
    for url in ("/leaderboard?dataset=mnist", "/runs/evil", "/trials/evil-00000", "/sweeps"):
        html = c.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "&lt;img src=x" in html, url
    figs = json.dumps(c.get("/api/runs/evil/charts").json())
    assert "<img" not in figs and "&lt;img src=x" in figs  # plotly renders some HTML in labels


class _Markup(HTMLParser):
    """The elements of a page as a browser's parser sees them: tags with their (unescaped) attributes."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


# Every character that means something in a path, query, fragment or attribute. (No %XX here: Starlette's test
# client decodes a path twice; the browser test sends one through a real server.)
ODD_RUN = 'a/b?c=1&d#e 100% "x\''
ODD_NAME = '"><img src=x onerror=alert(1)>'


def test_odd_ids_and_names_stay_text_in_attributes_and_links(client):
    c, store, _ = client
    tid = f"{ODD_RUN}-00000"
    store.start_run(ODD_RUN, kind="sweep", name=ODD_NAME, dataset="mnist", labels="fine", config={})
    add_trial(store, ODD_RUN, tid, model="javascript:alert(1)", augment="'><svg onload=alert(1)>",
              params={"lr": 0.1, "note": "javascript:alert(1)"}, accs=(0.999,))
    store.finish_run(ODD_RUN, "completed")
    store.update_run(ODD_RUN, best_trial=tid)
    run_url, trial_url = "/runs/" + quote(ODD_RUN, safe=""), "/trials/" + quote(tid, safe="")
    for url in ("/leaderboard?dataset=mnist", "/sweeps", run_url, trial_url):
        page = c.get(url)
        assert page.status_code == 200, url
        tags = _Markup(page.text).tags
        assert not [t for t, a in tags if t in ("img", "svg") or any(k.startswith("on") for k in a)], url
        hrefs = [a["href"] for t, a in tags if t == "a"] + [a["data-chart"] for t, a in tags if "data-chart" in a]
        assert all(urlsplit(h).scheme == "" and h[:1] in ("/", "?") for h in hrefs), (url, hrefs)  # no javascript:
        # the ids come back whole from the links and attributes that carry them
        ids = {unquote(urlsplit(h).path) for h in hrefs}
        assert {f"/runs/{ODD_RUN}", f"/trials/{tid}"} & ids or url == run_url, (url, ids)
        assert tid in {a.get("data-trial") for t, a in tags} or url in ("/sweeps", trial_url), url
        assert ODD_NAME in unescape(page.text) or url == trial_url, url
    links = [a["href"] for t, a in _Markup(c.get("/leaderboard?dataset=mnist").text).tags if t == "a"]
    assert run_url in links and trial_url in links  # '/' sent as %2F: one path segment
    for url in (run_url, trial_url, "/api" + run_url, "/api" + run_url + "/charts", "/api" + trial_url,
                "/api" + trial_url + "/charts"):
        assert c.get(url).status_code == 200, url
    assert c.get("/api" + run_url).json()["run"]["id"] == ODD_RUN
    assert c.get("/api" + trial_url).json()["trial"]["id"] == tid


def test_read_only_missing_things_and_headers(client):
    c, _, _ = client
    assert c.post("/api/leaderboard?dataset=mnist").status_code == 405
    assert c.delete("/api/runs/sw").status_code == 405
    assert c.get("/api/runs/nope").status_code == 404 and c.get("/api/runs/nope").json()["detail"] == "no run 'nope'"
    assert c.get("/api/trials/nope/charts").status_code == 404
    page = c.get("/runs/nope")
    assert page.status_code == 404 and "no run &#39;nope&#39; in the store" in page.text
    lb = c.get("/leaderboard?dataset=mnist")
    assert "script-src 'self'" in lb.headers["content-security-policy"]
    assert lb.headers["x-content-type-options"] == "nosniff"
    assert c.get("/", follow_redirects=False).headers["location"] == "/leaderboard?dataset=mnist&label=fine"
    health = c.get("/api/health").json()
    assert health["runs"] == 3 and health["schema_version"] == 1


def test_assets_are_served_locally(client):
    import plotly

    c, _, _ = client
    js = c.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.headers["x-plotly-version"] == plotly.__version__ and len(js.content) > 1_000_000
    for page in ("/runs/sw", "/docs"):
        html = c.get(page).text
        assert "cdn" not in html.lower() and "https://" not in html, page
    docs = c.get("/docs").text
    for src in [s.split('"')[0] for s in docs.split('src="')[1:]] + [s.split('"')[0] for s in docs.split('href="')[1:]]:
        if src.startswith("/"):
            assert c.get(src).status_code == 200, src
    spec = c.get("/openapi.json").json()
    assert {"/api/leaderboard", "/api/runs/{run_id}", "/api/runs/{run_id}/charts", "/api/trials/{trial_id}",
            "/api/events", "/api/boards", "/api/sweeps"} <= set(spec["paths"])
    assert all(set(ops) == {"get"} for ops in spec["paths"].values())


def test_events_stream_store_updates(store):
    """Server-sent events carry the store's pub/sub messages to a connected client (real uvicorn, real Redis)."""
    store.start_run("live", kind="sweep", name="live", dataset="mnist", labels="fine", config={})
    got: list[dict] = []
    connected = threading.Event()

    with LiveServer(store) as server:
        def listen():
            with httpx.stream("GET", server.url + "/api/events", timeout=20) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                for line in resp.iter_lines():
                    if line.startswith(": subscribed") or line.startswith("retry:"):
                        connected.set()
                    if line.startswith("data: "):
                        got.append(json.loads(line[6:]))
                        if got[-1]["type"] == "epoch":
                            return

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert connected.wait(15), "no subscription confirmation"
        add_trial(store, "live", "live-00000", accs=(0.5,))
        reader.join(15)
    kinds = [(e["type"], e.get("trial")) for e in got]
    assert ("trial", "live-00000") in kinds and ("epoch", "live-00000") in kinds, got


def test_filtered_boards_are_cached_until_the_store_changes(client):
    c, store, _ = client
    first = c.get("/api/leaderboard?dataset=mnist&family=cnn").json()
    version = store.version()
    assert c.get("/api/leaderboard?dataset=mnist&family=cnn").json() == first and store.version() == version
    add_trial(store, "sw", "sw-00009", model="cnn", family="cnn", accs=(0.999,))
    assert store.version() > version
    again = c.get("/api/leaderboard?dataset=mnist&family=cnn").json()
    assert _ids(again) == ["sw-00009"] + _ids(first)  # the cached index was not served stale
    assert "cnn" in c.get("/leaderboard?dataset=mnist").text  # the family filter lists it (kept as trials land)


def test_dataset_tabs_list_built_in_and_imported_datasets(client):
    """The store's catalogue drives the tabs: datasets runs recorded, and those `tunelab dashboard` published; a
    dataset's name and title are text, never markup; an unknown one is refused naming the known ones."""
    from tunelab.jobs.datasets import BUILTINS
    from tunelab.results.catalogue import describe_datasets

    c, store, _ = client
    assert [d["name"] for d in c.get("/api/datasets").json()] == ["mnist", "cifar100"]
    v0 = store.version()
    describe_datasets(store, {n: s.describe() for n, s in BUILTINS.items()})
    describe_datasets(store, {"pets": {"title": "<b>pets</b>", "labels": ["fine"], "builtin": False,
                                       "image": "3x64x64", "classes": {"fine": 3}}})
    assert store.version() > v0  # pages showing the tabs are not served from the cache
    listed = c.get("/api/datasets").json()
    assert [d["name"] for d in listed] == ["mnist", "cifar10", "cifar100", "pets"]
    assert listed[-1] == {"name": "pets", "title": "<b>pets</b>", "labels": ["fine"], "builtin": False,
                          "image": "3x64x64", "classes": {"fine": 3}}
    page = c.get("/leaderboard?dataset=pets")
    assert page.status_code == 200 and 'href="/leaderboard?dataset=pets"' in page.text
    assert 'href="/leaderboard?dataset=cifar10"' in page.text and "<b>pets</b>" not in page.text
    assert c.get("/api/leaderboard?dataset=pets").json() == []
    bad = c.get("/api/leaderboard?dataset=svhn")
    assert bad.status_code in (400, 422) and "mnist, cifar10, cifar100, pets" in bad.text
    v1 = store.version()
    describe_datasets(store, {"pets": {k: v for k, v in listed[-1].items() if k != "name"}})
    assert store.version() == v1  # the same description again writes nothing
