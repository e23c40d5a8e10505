"""A local Ray head started by `tunelab cluster start`: Ray's own `ray start --head`, with the dashboard and
jobs server, usage stats off, token auth as Ray defaults to, and never on Redis's port 6379. Its session is
recorded under the data dir so `cluster stop` stops this head alone (not every Ray process on the machine,
as `ray stop` does)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from tunelab.cluster.errors import ClusterError

DEFAULT_PORT = 6380  # Ray's default GCS port is Redis's 6379
DEFAULT_DASHBOARD_PORT = 8265
REDIS_PORT = 6379


@dataclass
class HeadInfo:
    gcs_address: str
    dashboard_url: str
    session_dir: str
    started: float
    num_cpus: Optional[int]
    num_gpus: Optional[int]
    token: Optional[str]


def state_file(data_dir: Path) -> Path:
    return Path(data_dir) / "cluster" / "head.json"


def read_state(data_dir: Path) -> Optional[HeadInfo]:
    try:
        return HeadInfo(**json.loads(state_file(data_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A TCP port free on every interface right now (the kernel's pick; free on loopback too). Cheap to import:
    this module imports no Ray, so tests and benchmarks take it from here."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else "ray"


def _session_processes(session_dir: str):
    import psutil

    name = Path(session_dir).name
    procs = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(name in arg for arg in (p.info["cmdline"] or [])):
                procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return procs


def is_running(info: HeadInfo) -> bool:
    host, port = info.gcs_address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def start(data_dir: Path, *, port: int = DEFAULT_PORT, dashboard_port: int = DEFAULT_DASHBOARD_PORT,
          dashboard_host: str = "127.0.0.1", num_cpus: Optional[int] = None, num_gpus: Optional[int] = None,
          redis_port: Optional[int] = None, progress=lambda msg: None,
          worker_env: Optional[dict[str, str]] = None) -> HeadInfo:
    """Start a Ray head on this machine; ClusterError (one line) when it cannot. `progress` hears one line once
    the request is checked and Ray is starting. `worker_env`: environment for the head's processes (its workers
    inherit it), unless this process's environment sets the same names."""
    for taken, why in [(REDIS_PORT, "Redis's port"), (redis_port, "the port of TUNELAB_REDIS_URL")]:
        if taken and port == taken:
            raise ClusterError(f"--port {port} is {why}; keep Ray's GCS off it (default {DEFAULT_PORT})")
    if port == dashboard_port:
        raise ClusterError(f"--port and --dashboard-port are both {port}; pick two ports")
    old = read_state(data_dir)
    if old and is_running(old):
        raise ClusterError(f"a tunelab Ray head is already running (GCS {old.gcs_address}, jobs {old.dashboard_url}); "
                           "`tunelab cluster stop` first")
    for p, flag in [(port, "--port"), (dashboard_port, "--dashboard-port")]:
        if not _port_free("0.0.0.0", p):
            raise ClusterError(f"port {p} is in use (another Ray head?); pick another {flag} or stop what holds it")
    progress(f"starting a Ray head (GCS port {port}, jobs server on {dashboard_host}:{dashboard_port}) …")
    log = state_file(data_dir).with_name("ray-start.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [_ray_cli(), "start", "--head", f"--port={port}", f"--dashboard-host={dashboard_host}",
            f"--dashboard-port={dashboard_port}", "--include-dashboard=true", "--disable-usage-stats",
            # the jobs agent's HTTP port: Ray's fixed default (52365) is taken by any other Ray on this machine,
            # and a head whose agent cannot bind accepts no jobs ("No available agent to submit job")
            f"--dashboard-agent-listen-port={free_port()}"]
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    # a job's entrypoint runs `python`: on this head, the interpreter (and environment) tunelab runs in
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    for key, value in (worker_env or {}).items():  # the user's own values win
        env.setdefault(key, value)
    if env.get("RAY_AUTH_MODE", "token") == "token":
        # `ray start` turns token auth on only when a token exists (`ray.init` makes one): make sure it does
        from tunelab.cluster.auth import token_source

        if token_source() is None:
            gen = subprocess.run([_ray_cli(), "get-auth-token", "--generate"], capture_output=True, text=True, timeout=60)
            if gen.returncode != 0:
                raise ClusterError(f"could not create a Ray auth token ({gen.stderr.strip()[-200:]}); "
                                   "set RAY_AUTH_TOKEN, or RAY_AUTH_MODE=disabled on a trusted network")
        env["RAY_AUTH_MODE"] = "token"
    with open(log, "w") as out:
        proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=180)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        last = next((line for line in reversed(text.splitlines()) if line.strip()), "no output")
        raise ClusterError(f"`ray start --head` failed ({last.strip()[:200]}); full log: {log}")
    session = _session_dir(port)
    if session is None:
        raise ClusterError(f"`ray start --head` reported success but no Ray GCS serves port {port}; see {log}")
    node_ip = _node_ip(text) or "127.0.0.1"
    from tunelab.cluster.auth import enable_token_auth

    info = HeadInfo(gcs_address=f"{node_ip}:{port}",
                    dashboard_url=f"http://{'127.0.0.1' if dashboard_host in ('127.0.0.1', '0.0.0.0') else dashboard_host}:{dashboard_port}",
                    session_dir=session, started=time.time(), num_cpus=num_cpus, num_gpus=num_gpus,
                    token=enable_token_auth() if env.get("RAY_AUTH_MODE") == "token" else None)
    tmp = state_file(data_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2))
    tmp.replace(state_file(data_dir))
    return info


def _session_dir(port: int) -> Optional[str]:
    """The session directory of the GCS serving `port` (not /tmp/ray/session_latest: another Ray on this
    machine may have started since)."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        args = p.info["cmdline"] or []
        if args and Path(args[0]).name == "gcs_server" and f"--gcs_server_port={port}" in args:
            for a in args:
                if a.startswith("--log_dir="):
                    return str(Path(a.split("=", 1)[1]).parent)
    return None


def _node_ip(text: str) -> Optional[str]:
    import re

    m = re.search(r"ray start --address='([\d.]+):\d+'", text) or re.search(r"Local node IP\S*: \S*?([\d.]+)", text)
    return m.group(1) if m else None


def stop(data_dir: Path, grace_s: float = 10.0) -> Optional[HeadInfo]:
    """Stop the head `start` recorded (its session's processes only); the stopped head, or None."""
    import psutil

    info = read_state(data_dir)
    if info is None:
        return None
    procs = _session_processes(info.session_dir)
    children = [c for p in procs for c in _children(p)]
    everything = {p.pid: p for p in procs + children}.values()
    for p in everything:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(everything), timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    state_file(data_dir).unlink(missing_ok=True)
    return info


def _children(p):
    import psutil

    try:
        return p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
