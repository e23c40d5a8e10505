"""The dashboard's response cache over a real Redis store: a page or API answer is kept until the store's version
moves (ETag, 304 on If-None-Match), a write shows at once, live and failing answers are never kept; and `tunelab
dashboard --workers 2` serves it from two processes."""

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from tests.conftest import ROOT, _free_port
from tests.conftest import in_process as _in_process
from tests.dashboards.conftest import add_trial
from tunelab.dashboards import views
from tunelab.dashboards.cache import ResponseCache
from tunelab.dashboards.web import create_app

PAGES = ["/leaderboard?dataset=mnist", "/api/leaderboard?dataset=mnist", "/runs/sw", "/api/runs/sw",
         "/api/runs/sw/charts", "/trials/sw-00001", "/api/trials/sw-00001", "/api/trials/sw-00001/charts"]


@pytest.fixture
def client(filled):
    store, _ = filled
    with TestClient(create_app(lambda: store)) as c:
        yield c, store


def test_a_second_get_is_the_kept_answer_and_revalidates_to_304(client, monkeypatch):
    c, _ = client
    for path in PAGES:
        first, second = c.get(path), c.get(path)
        assert first.status_code == second.status_code == 200, path
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit"), path
        assert first.content == second.content and first.headers["etag"] == second.headers["etag"], path
        assert second.headers["cache-control"] == "no-cache" and second.headers["etag"].startswith('"')
        assert second.headers["content-type"] == first.headers["content-type"]
        etag = second.headers["etag"]
        for sent in (etag, f"W/{etag}", f'"other", {etag}'):
            again = c.get(path, headers={"If-None-Match": sent})
            assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, (path, sent)
        assert c.get(path, headers={"If-None-Match": '"other"'}).content == first.content
    # a kept answer does not run its route
    calls = []
    real = views.trial_detail
    monkeypatch.setattr(views, "trial_detail", lambda *a: calls.append(a) or real(*a))
    c.get("/trials/sw-00001")
    c.get("/api/trials/sw-00001")
    assert calls == []
    assert c.get("/trials/sw-00001?x=1").headers["x-cache"] == "miss" and len(calls) == 1  # the query is in the key


def test_a_write_moves_the_version_and_the_next_get_shows_it(client):
    c, store = client
    page, api = c.get("/trials/sw-00001"), c.get("/api/trials/sw-00001")
    board = c.get("/api/leaderboard?dataset=mnist")
    store.record_epoch("sw-00001", {"epoch": 4, "val_acc": 0.987654, "train_loss": 0.1})
    assert c.get("/api/trials/sw-00001").json()["epochs"][-1]["val_acc"] == 0.987654
    fresh = c.get("/trials/sw-00001", headers={"If-None-Match": page.headers["etag"]})
    assert fresh.status_code == 200 and fresh.headers["etag"] != page.headers["etag"] and "98.77" in fresh.text
    assert c.get("/api/leaderboard?dataset=mnist").json()[0]["val_acc"] == 0.987654 != board.json()[0]["val_acc"]
    assert api.json()["epochs"][-1]["epoch"] == 3
    # writes that publish no event move the version too: a checkpoint (trial page), a run's fields (run page)
    c.get("/runs/sw")
    store.set_checkpoint("sw-00001", "/ckpt/epoch-4")
    assert "/ckpt/epoch-4" in c.get("/trials/sw-00001").text
    store.update_run("sw", status="resumed-for-test")
    assert "resumed-for-test" in c.get("/runs/sw").text
    # a new trial: the run page that was kept lists it
    add_trial(store, "sw", "sw-00042", accs=(0.42,))
    assert "sw-00042" in c.get("/runs/sw").text


def test_health_and_failures_are_never_kept(client, monkeypatch):
    c, store = client
    health = c.get("/api/health")
    assert "etag" not in health.headers and "x-cache" not in health.headers
    store.start_run("extra", kind="train", name="extra", dataset="mnist", labels="fine", config={})
    assert c.get("/api/health").json()["runs"] == health.json()["runs"] + 1
    calls = []
    real = views.trial_detail
    monkeypatch.setattr(views, "trial_detail", lambda *a: calls.append(a) or real(*a))
    for path, status in [("/trials/nope", 404), ("/api/trials/nope", 404), ("/api/leaderboard?dataset=x", 422),
                         ("/leaderboard?dataset=x", 400)]:
        for _ in range(2):
            r = c.get(path)
            assert r.status_code == status and "etag" not in r.headers and "x-cache" not in r.headers, path
    assert len(calls) == 4  # each 404 ran its route both times
    assert "x-cache" not in c.get("/static/app.js").headers


def _tiny_app(calls: list, delay: float = 0.0):
    async def view(request):
        calls.append(request.url.path)
        await asyncio.sleep(delay)
        if request.url.path == "/big":
            return PlainTextResponse("x" * 5000, media_type="application/json")
        if request.url.path == "/cookie":
            return JSONResponse({"who": "you"}, headers={"set-cookie": "a=b"})
        return JSONResponse({"path": request.url.path})

    return Starlette(routes=[Route("/{name}", view)])


def test_the_cache_is_bounded_shared_by_concurrent_misses_and_forgets_a_reset_store():
    calls: list[str] = []
    version = {"now": 5}

    async def read_version():
        return version["now"]

    app = ResponseCache(_tiny_app(calls, delay=0.05), read_version, max_entries=2, max_bytes=8000)

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            answers = await asyncio.gather(*(c.get("/a") for _ in range(5)))  # at once: the route runs once
            assert calls == ["/a"] and {r.json()["path"] for r in answers} == {"/a"}
            for path in ("/b", "/c", "/a"):  # two entries at most: /a was the least recently used
                await c.get(path)
            assert calls == ["/a", "/b", "/c", "/a"]
            await c.get("/big")
            await c.get("/big")  # over an eighth of max_bytes: never kept
            await c.get("/cookie")
            await c.get("/cookie")  # meant for one client: never kept
            assert calls[-4:] == ["/big", "/big", "/cookie", "/cookie"]
            await c.get("/a")
            assert calls[-1] == "/cookie"  # /a still kept
            # the store was emptied (a request saw its version fall) and written again up to the same version:
            # what was kept came from the old store
            version["now"] = 1
            await c.get("/b")
            version["now"] = 5
            assert (await c.get("/a")).headers["x-cache"] == "miss"

    asyncio.run(run())


def test_dashboard_with_two_workers_serves_and_fails_in_one_line(filled, redis_server, monkeypatch, capsys):
    res = _in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": "redis://:pw@127.0.0.1:1/0"}, "dashboard",
                      "--workers", "2")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "cannot reach Redis" in res.stderr, res.stderr
    store, facts = filled
    port = _free_port()
    env = {**os.environ, "TUNELAB_REDIS_URL": redis_server.url}
    proc = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "dashboard", "--port", str(port), "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "no start"
            try:
                httpx.get(base + "/api/health", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        import psutil

        servers = [p for p in psutil.Process(proc.pid).children() if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(servers) == 2, [p.cmdline() for p in servers]  # two server processes under uvicorn's supervisor
        # new connections land on either process: each answers the same, with the same ETag
        answers = [httpx.get(base + "/api/leaderboard?dataset=mnist", timeout=10) for _ in range(6)]
        assert {a.headers["etag"] for a in answers} == {answers[0].headers["etag"]}
        assert [r["trial_id"] for r in answers[0].json()] == facts["mnist_order"]
        add_trial(store, "sw", "sw-00077", accs=(0.999,))
        assert all(httpx.get(base + "/api/leaderboard?dataset=mnist", timeout=10).json()[0]["trial_id"] == "sw-00077"
                   for _ in range(4))
        with httpx.stream("GET", base + "/api/events", timeout=10) as events:  # a stream, passed on as it comes
            assert events.headers["content-type"].startswith("text/event-stream") and "etag" not in events.headers
            assert next(events.iter_lines()).startswith(":")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert f"tunelab dashboard on http://127.0.0.1:{port}" in err and "2 processes" in err
