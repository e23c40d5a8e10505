"""`tunelab dashboard`: the web dashboard over the result store."""

from __future__ import annotations

import typer

from tunelab.cli.common import err
from tunelab.errors import InputError


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard(
    host: str = typer.Option("127.0.0.1", help="address to listen on; anything but loopback exposes the results"),
    port: int = typer.Option(8080, min=1, max=65535, help="port to listen on"),
) -> None:
    """Serve the web dashboard (leaderboards, sweeps, runs, JSON API at /docs) from the result store."""
    import socket

    from tunelab.api import open_store

    store = open_store()  # fail here, in one line, when the store is unreachable
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port or --host") from None
    import uvicorn

    from tunelab.dashboards.web import create_app
    from tunelab.results import redact

    app_ = create_app(lambda: store)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"tunelab dashboard on http://{shown}:{port} — store {redact(store.url)}; Ctrl-C stops it", markup=False)
    if host not in _LOOPBACK:
        err.print(f"warning: listening on {host}, not loopback: anyone who can reach this port can read every result "
                  "(the dashboard is read-only and has no login)", markup=False)
    uvicorn.run(app_, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
