"""Training jobs and sweeps submitted to a Ray cluster through the Ray Jobs API.

A job is an ordinary Ray job (`ray job list` shows it): its entrypoint is `python -m tunelab.cli train|sweep …`,
its `working_dir` this source tree (without virtualenvs, data, caches, outputs), and its environment carries the
settings the job needs: where results go (TUNELAB_REDIS_URL), where checkpoints go (TUNELAB_STORAGE) and, for a
head on this machine, the data root.
"""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import os
import secrets
import shlex
import socket
import time
from pathlib import Path
from typing import AsyncIterator, Optional
from urllib.parse import urlsplit

from tunelab.cluster.auth import auth_headers, auth_message, enable_token_auth, is_auth_error
from tunelab.cluster.connect import ClusterError
from tunelab.errors import exception_line

SOURCE_ROOT = Path(__file__).resolve().parent.parent
# Never shipped with a job: environments, data, results, caches, build and test outputs.
EXCLUDES = [".venv/", "venv/", ".git/", ".cache/", "data/", "test-artifacts/", ".pytest_cache/", "**/__pycache__/",
            "*.egg-info/", "build/", "dist/", "*.pth", "*.pt", "*.ckpt", "experiments/", "**/*.png"]
COMMANDS = ("train", "sweep")
MARKER = "tunelab_command"  # metadata key that marks tunelab's jobs among a cluster's Ray jobs
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def resolve_address(address: Optional[str], data_dir: Optional[Path] = None) -> str:
    """The jobs server to talk to: --address, RAY_API_SERVER_ADDRESS, an http RAY_ADDRESS, the head that
    `tunelab cluster start` recorded, else the default local dashboard."""
    if address:
        return address if "://" in address else f"http://{address}"
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(var, "")
        if value.startswith(("http://", "https://")):
            return value
    if data_dir is not None:
        from tunelab.cluster.head import read_state

        state = read_state(data_dir)
        if state:
            return state.dashboard_url
    return DEFAULT_ADDRESS


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        host = port = None
    if parts.scheme not in ("http", "https") or not host:
        raise ClusterError(f"jobs address {address!r} is not http://HOST:PORT; pass e.g. --address http://head:8265")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray jobs server at {host}:{port} ({e.strerror or e}); is the head up "
                           f"(`tunelab cluster status`) and is --address right?") from None


def client(address: str):
    """A JobSubmissionClient for `address`, with the token found where Ray keeps it; ClusterError otherwise."""
    _check_reachable(address)
    enable_token_auth()
    import logging

    from ray.job_submission import JobSubmissionClient

    # Ray's client logs packaging details at INFO/WARNING on every submit; tunelab prints what matters
    for name in ["ray", *(n for n in logging.root.manager.loggerDict if n.startswith("ray."))]:
        logging.getLogger(name).setLevel(logging.ERROR)

    try:
        return JobSubmissionClient(address)
    except Exception as e:
        if is_auth_error(e):
            raise ClusterError(auth_message(address)) from None
        raise ClusterError(f"the Ray jobs server at {address} did not answer properly "
                           f"({exception_line(e, limit=200)})") from None


def is_local(address: str) -> bool:
    """Whether the jobs server (so the head) runs on this machine: a job there can use this machine's files."""
    host = urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    try:
        mine = {socket.gethostbyname(socket.gethostname()), *socket.gethostbyname_ex(socket.gethostname())[2]}
        return socket.gethostbyname(host) in mine
    except OSError:
        return False


def job_env(address: str, *, redis_url: str, storage: Optional[str], data_dir: Path,
            data_dir_explicit: bool) -> dict[str, str]:
    """The settings a job needs, for a head at `address`; `redis_url` is a store the job can reach (for a head on
    another machine not the embedded one's unix socket: the caller checks, tunelab.placement.store_url)."""
    local = is_local(address)
    env = {"PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0", "TUNELAB_REDIS_URL": redis_url}
    if storage:
        env["TUNELAB_STORAGE"] = storage
    if local or data_dir_explicit:
        env["TUNELAB_DATA_DIR"] = str(data_dir)
    return env


def _ship_path(arg: str) -> str:
    """A sweep recipe argument as the job will see it: relative to the shipped source tree."""
    p = Path(arg).expanduser()
    if not p.exists():
        raise ClusterError(f"sweep recipe {arg} does not exist; pass a YAML file inside {SOURCE_ROOT}")
    try:
        return str(p.resolve().relative_to(SOURCE_ROOT))
    except ValueError:
        raise ClusterError(f"sweep recipe {arg} is outside {SOURCE_ROOT}, which is what the job ships; "
                           "copy it into search_spaces/") from None


def submit(args: list[str], *, address: str, env: dict[str, str], submission_id: Optional[str] = None) -> str:
    """Submit `tunelab ARGS` (train … or sweep SPEC.yaml …) as a Ray job; its id."""
    if not args or args[0] not in COMMANDS:
        raise ClusterError(f"submit runs `train` or `sweep`, got {' '.join(args) or 'nothing'!r}; "
                           "e.g. tunelab submit -- train --dataset mnist")
    if args[0] == "sweep" and len(args) > 1 and not args[1].startswith("-") and args[1] not in ("resume",):
        args = [args[0], _ship_path(args[1]), *args[2:]]
    c = client(address)
    job_id = submission_id or f"tunelab-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    entrypoint = "python -m tunelab.cli " + shlex.join(args)
    try:
        return c.submit_job(
            entrypoint=entrypoint, submission_id=job_id,
            runtime_env={"working_dir": str(SOURCE_ROOT), "excludes": EXCLUDES, "env_vars": env},
            metadata={MARKER: shlex.join(args), "submitted_by": getpass.getuser()},
        )
    except Exception as e:
        if is_auth_error(e):
            raise ClusterError(auth_message(address)) from None
        raise ClusterError(f"the Ray jobs server at {address} refused the job "
                           f"({exception_line(e, limit=200)})") from None


def _record(job) -> dict:
    meta = job.metadata or {}
    return {"id": job.submission_id or job.job_id, "status": str(getattr(job.status, "value", job.status)),
            "command": meta.get(MARKER), "entrypoint": job.entrypoint, "message": job.message,
            "start_time": job.start_time / 1000 if job.start_time else None,
            "end_time": job.end_time / 1000 if job.end_time else None, "tunelab": MARKER in meta}


def _call(address: str, what: str, fn):
    try:
        return fn()
    except Exception as e:
        if is_auth_error(e):
            raise ClusterError(auth_message(address)) from None
        text = str(e)
        if "does not exist" in text or "404" in text:
            raise ClusterError(f"no job {what!r} on the cluster at {address}; see `tunelab jobs list`") from None
        raise ClusterError(f"the Ray jobs server at {address} failed ({exception_line(e, limit=200)})") from None


def list_jobs(address: str, include_all: bool = False) -> list[dict]:
    """The cluster's jobs, newest first; only tunelab's unless `include_all`."""
    c = client(address)
    jobs = [_record(j) for j in _call(address, "", c.list_jobs)]
    jobs.sort(key=lambda j: j["start_time"] or 0, reverse=True)
    return [j for j in jobs if include_all or j["tunelab"]]


def status(address: str, job_id: str) -> dict:
    c = client(address)
    return _record(_call(address, job_id, lambda: c.get_job_info(job_id)))


def logs(address: str, job_id: str) -> str:
    c = client(address)
    return _call(address, job_id, lambda: c.get_job_logs(job_id))


def follow(address: str, job_id: str) -> AsyncIterator[str]:
    """The job's log from the start, then as it is written, until the job ends."""
    c = client(address)
    _call(address, job_id, lambda: c.get_job_info(job_id))
    return c.tail_job_logs(job_id)


def stop(address: str, job_id: str) -> bool:
    c = client(address)
    return bool(_call(address, job_id, lambda: c.stop_job(job_id)))


def wait(address: str, job_id: str, timeout_s: float = 600, poll_s: float = 1.0) -> dict:
    """Block until the job ends (or `timeout_s`); its final record."""
    deadline = time.monotonic() + timeout_s
    while True:
        rec = status(address, job_id)
        if rec["status"] in TERMINAL or time.monotonic() > deadline:
            return rec
        time.sleep(poll_s)


def run_follow(address: str, job_id: str, write) -> dict:
    """Write the job's log as it arrives, then return its final record."""
    async def pump():
        async for chunk in follow(address, job_id):
            write(chunk)

    asyncio.run(pump())
    return wait(address, job_id, timeout_s=60)


def cluster_status(address: str) -> dict:
    """Ray version, alive nodes, their total CPU/GPU/memory, and job counts by status."""
    import requests

    c = client(address)
    try:
        version = requests.get(f"{address}/api/version", headers=auth_headers(), timeout=10).json()
        summary = requests.get(f"{address}/nodes?view=summary", headers=auth_headers(), timeout=10).json()
    except (requests.RequestException, ValueError) as e:
        raise ClusterError(f"the Ray dashboard at {address} did not answer ({type(e).__name__}); is the head up?") from None
    nodes = [n for n in (summary.get("data") or {}).get("summary", []) if (n.get("raylet") or {}).get("state") == "ALIVE"]
    totals: dict[str, float] = {}
    for n in nodes:
        for k, v in ((n.get("raylet") or {}).get("resourcesTotal") or {}).items():
            if k in ("CPU", "GPU", "memory"):
                totals[k] = totals.get(k, 0) + v
    listed = [_record(j) for j in _call(address, "", c.list_jobs)]
    counts: dict[str, int] = {}
    for j in listed:
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    return {"address": address, "ray_version": version.get("ray_version"), "nodes": len(nodes), "resources": totals,
            "jobs": counts}
