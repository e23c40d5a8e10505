"""`tunelab dashboard`: the web dashboard over the result store."""

from __future__ import annotations

import os
from typing import Optional

import typer

from tunelab.cli.common import err
from tunelab.errors import InputError

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """Server processes when `--workers` is not given: one per core this process may run on, at most 4 (a cached page
    costs a process well under a millisecond; past a few processes the cores, not the processes, are the limit)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def dashboard(
    host: str = typer.Option("127.0.0.1", help="address to listen on; anything but loopback exposes the results"),
    port: int = typer.Option(8080, min=1, max=65535, help="port to listen on"),
    workers: Optional[int] = typer.Option(None, min=1, max=64, show_default=False,
                                          help="server processes sharing the port [default: one per core, at most 4]"),
) -> None:
    """Serve the web dashboard (leaderboards, sweeps, runs, JSON API at /docs) from the result store."""
    from tunelab.api import open_store, publish_datasets

    store = open_store()  # fail here, in one line, when the store is unreachable
    sock = _listen(host, port)
    publish_datasets(store)  # the tabs list every registered dataset, results or not
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from tunelab.dashboards import web
    from tunelab.results import redact

    workers = workers or default_workers()
    shown = f"[{host}]" if ":" in host else host
    procs = "1 process" if workers == 1 else f"{workers} processes"
    err.print(f"tunelab dashboard on http://{shown}:{port} — store {redact(store.url)}, {procs}; Ctrl-C stops it",
              markup=False)
    if host not in _LOOPBACK:
        err.print(f"warning: listening on {host}, not loopback: anyone who can reach this port can read every result "
                  "(the dashboard is read-only and has no login)", markup=False)
    opts = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": 2}
    if workers == 1:
        server = uvicorn.Server(uvicorn.Config(web.create_app(lambda: store), **opts))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it caught once it has shut down: a clean stop
            pass
        return
    # Each process imports the app by name and opens the store itself, at the URL this one checked.
    os.environ[web.STORE_URL_ENV] = store.url
    config = uvicorn.Config(f"{web.__name__}:app_from_env", factory=True, workers=workers, **opts)
    Multiprocess(config, sockets=[sock]).run()


def _listen(host: str, port: int):
    """The server's listening socket, bound here (InputError in one line when the port is taken). Made as a TCP socket
    by name: uvicorn's own for `--workers N` leaves the protocol unset, so asyncio does not turn Nagle off on its
    connections and every keep-alive response waits ~40 ms for a delayed ACK (uvicorn issue 3149)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port or --host") from None
    sock.set_inheritable(True)  # handed to each server process
    return sock
