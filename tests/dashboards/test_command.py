"""`tunelab dashboard` as a user starts it: the URL on start, a warning off loopback, a clean Ctrl-C, and one
line with exit 2 for a busy port or an unreachable store."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT, _free_port
from tests.conftest import in_process as _in_process


def test_busy_port_and_unreachable_store_are_one_line(redis_server, monkeypatch, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = _in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": redis_server.url}, "dashboard", "--port", str(port))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr and "pick another --port" in res.stderr
    res = _in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": "redis://:pw@127.0.0.1:1/0"}, "dashboard")
    assert res.returncode == 2 and "cannot reach Redis" in res.stderr and "pw@" not in res.stderr


def test_serves_until_interrupted_and_warns_off_loopback(filled, redis_server):
    port = _free_port()
    env = {**os.environ, "TUNELAB_REDIS_URL": redis_server.url}
    proc = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "dashboard", "--host", "0.0.0.0", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "no start"
            try:
                rows = httpx.get(f"http://127.0.0.1:{port}/api/leaderboard?dataset=mnist", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert rows[0]["trial_id"] == "sw-00001"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"tunelab dashboard on http://0.0.0.0:{port}" in err
    assert "warning: listening on 0.0.0.0, not loopback" in err and "Traceback" not in err
