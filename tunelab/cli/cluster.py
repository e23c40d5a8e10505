"""`tunelab cluster …`, `tunelab submit` and `tunelab jobs …`: a Ray head on this machine, and jobs on a cluster."""

from __future__ import annotations

import os
import sys
import time
from typing import Optional

import typer

from tunelab.cli.common import err, out, print_json
from tunelab.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="A Ray head on this machine: start, stop, status.")
jobs_app = typer.Typer(no_args_is_help=True, help="Jobs submitted to a Ray cluster: list, status, logs, stop.")

SUBMIT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("start")
def cluster_start(
    port: int = typer.Option(6380, min=1, max=65535, help="Ray GCS port (never Redis's 6379)"),
    dashboard_port: int = typer.Option(8265, min=1, max=65535, help="Ray dashboard and jobs server port"),
    dashboard_host: str = typer.Option("127.0.0.1", help="address the dashboard/jobs server listens on; 0.0.0.0 to "
                                       "accept submissions from other machines"),
    num_cpus: Optional[int] = typer.Option(None, min=0, help="CPUs the head offers [all]"),
    num_gpus: Optional[int] = typer.Option(None, min=0, help="GPUs the head offers [all detected]"),
) -> None:
    """Start a Ray head here (dashboard + jobs server, token auth, usage stats off) for `tunelab submit`."""
    from urllib.parse import urlsplit

    from tunelab.cluster import head

    s = load_settings()
    redis_port = urlsplit(s.redis_url).port if s.redis_url and s.redis_url.startswith("redis") else None
    from tunelab.jobs.step import MALLOC_ENV

    # Warm workers: each Python worker the head starts imports torch before it takes work, so the idle workers Ray
    # keeps ready hold it when a command's trial or training worker lands on one; and every worker keeps freed
    # tensor memory (glibc reads MALLOC_* at process start).
    worker_env = {"RAY_preload_python_modules": "torch", **MALLOC_ENV}
    info = head.start(s.data_dir, port=port, dashboard_port=dashboard_port, dashboard_host=dashboard_host,
                      num_cpus=num_cpus, num_gpus=num_gpus, redis_port=redis_port,
                      progress=lambda msg: err.print(msg, markup=False), worker_env=worker_env)
    out.print(f"Ray head up: GCS {info.gcs_address}, dashboard and jobs {info.dashboard_url}", markup=False)
    out.print("`tunelab train` and `tunelab sweep` without --address use this head while it runs", markup=False)
    out.print(f"auth: {'token from ' + info.token if info.token else 'no token (RAY_AUTH_MODE=disabled)'}", markup=False)
    out.print(f"join a worker: ray start --address={info.gcs_address}   submit: tunelab submit -- train …   "
              "stop: tunelab cluster stop", markup=False)


@app.command("stop")
def cluster_stop() -> None:
    """Stop the head `tunelab cluster start` started (other Ray processes on this machine are left alone)."""
    from tunelab.cluster import head

    info = head.stop(load_settings().data_dir)
    out.print(f"stopped the Ray head at {info.gcs_address}" if info else "no tunelab Ray head recorded on this machine",
              markup=False)


@app.command("status")
def cluster_status(
    address: Optional[str] = typer.Option(None, help="jobs server URL [the head started here, else http://127.0.0.1:8265]"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """The cluster's nodes, resources and jobs; exit 2 when it is down."""
    from tunelab.cluster import head, jobs

    s = load_settings()
    url = jobs.resolve_address(address, s.data_dir)
    rec = jobs.cluster_status(url)
    state = head.read_state(s.data_dir)
    rec["started_here"] = bool(state and state.dashboard_url == url)
    rec["gcs_address"] = state.gcs_address if rec["started_here"] else None
    if as_json:
        print_json(rec)
        return
    res = ", ".join(f"{v:g} {k}" if k != "memory" else f"{v / 2**30:.1f} GiB memory"
                    for k, v in sorted(rec["resources"].items()))
    out.print(f"Ray {rec['ray_version']} at {url}: {rec['nodes']} node(s) alive; {res or 'no resources'}"
              + (f"; GCS {rec['gcs_address']} (started here)" if rec["started_here"] else ""), markup=False)
    out.print("jobs: " + (", ".join(f"{v} {k.lower()}" for k, v in rec["jobs"].items()) or "none"), markup=False)


def submit(
    ctx: typer.Context,
    address: Optional[str] = typer.Option(None, help="jobs server URL, e.g. http://HEAD:8265 [RAY_API_SERVER_ADDRESS, "
                                          "the head started here, else http://127.0.0.1:8265]"),
    storage: Optional[str] = typer.Option(None, envvar="TUNELAB_STORAGE",
                                          help="storage for checkpoints: s3://…, gs://… or a path every node mounts"),
    as_json: bool = typer.Option(False, "--json", help="print the job record as JSON only"),
) -> None:
    """Submit `train …` or `sweep SPEC.yaml …` to a Ray cluster as a Ray job: tunelab submit -- train --epochs 1"""
    from tunelab.cluster import jobs
    from tunelab.placement import store_url

    s = load_settings()
    args = list(ctx.args)
    if args[:1] == ["--"]:
        args = args[1:]
    if storage is not None:
        from tunelab.cluster.storage import check_uri

        check_uri(storage)
    url = jobs.resolve_address(address, s.data_dir)
    redis_url = store_url(s, remote=None if jobs.is_local(url) else f"a cluster at {url}")
    env = jobs.job_env(url, redis_url=redis_url, storage=storage, data_dir=s.data_dir,
                       data_dir_explicit=bool(os.environ.get("TUNELAB_DATA_DIR")))
    job_id = jobs.submit(args, address=url, env=env)
    if as_json:
        print_json({"id": job_id, "address": url, "command": args})
        return
    out.print(f"submitted {job_id} to {url}: tunelab {' '.join(args)}", markup=False)
    out.print(f"follow it: tunelab jobs logs {job_id} --follow   (or: ray job logs {job_id} --address {url} -f)", markup=False)


def _jobs_address(address: Optional[str]) -> str:
    from tunelab.cluster import jobs

    return jobs.resolve_address(address, load_settings().data_dir)


_JOB_ADDRESS = typer.Option(None, help="jobs server URL [RAY_API_SERVER_ADDRESS, the head started here, "
                                       "else http://127.0.0.1:8265]")


@jobs_app.command("list")
def jobs_list(
    address: Optional[str] = _JOB_ADDRESS,
    include_all: bool = typer.Option(False, "--all", help="every Ray job, not only tunelab's"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """Jobs on the cluster, newest first."""
    from rich.table import Table
    from rich.text import Text

    from tunelab.cluster import jobs

    listed = jobs.list_jobs(_jobs_address(address), include_all)
    if as_json:
        print_json(listed)
        return
    if not listed:
        out.print("no jobs yet; submit one with `tunelab submit -- train …`")
        return
    t = Table(title="jobs — newest first", title_justify="left")
    for col in ("job", "status", "command", "started", "ended"):
        t.add_column(col)
    for j in listed:
        when = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(x)) if x else "—" for x in (j["start_time"], j["end_time"])]
        t.add_row(Text(j["id"]), j["status"], Text(j["command"] or j["entrypoint"]), *when)
    out.print(t)


@jobs_app.command("status")
def jobs_status(
    job_id: str = typer.Argument(..., help="the job id `tunelab submit` printed"),
    address: Optional[str] = _JOB_ADDRESS,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """One job's status; exit 0 whatever it is."""
    from tunelab.cluster import jobs

    rec = jobs.status(_jobs_address(address), job_id)
    if as_json:
        print_json(rec)
    else:
        out.print(f"{rec['id']}: {rec['status']}" + (f" — {rec['message']}" if rec["message"] else ""), markup=False)


@jobs_app.command("logs")
def jobs_logs(
    job_id: str = typer.Argument(..., help="the job id `tunelab submit` printed"),
    address: Optional[str] = _JOB_ADDRESS,
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing until the job ends; exit 1 unless it succeeded"),
) -> None:
    """A job's output (the tunelab command's progress lines and summary)."""
    from tunelab.cluster import jobs

    url = _jobs_address(address)
    if not follow:
        sys.stdout.write(jobs.logs(url, job_id))
        return

    def write(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    rec = jobs.run_follow(url, job_id, write)
    err.print(f"job {job_id} {rec['status']}", markup=False)
    if rec["status"] != "SUCCEEDED":
        raise typer.Exit(1)


@jobs_app.command("stop")
def jobs_stop(
    job_id: str = typer.Argument(..., help="the job id `tunelab submit` printed"),
    address: Optional[str] = _JOB_ADDRESS,
) -> None:
    """Stop a running job (Ray interrupts its driver; a sweep stops its trials)."""
    from tunelab.cluster import jobs

    url = _jobs_address(address)
    stopped = jobs.stop(url, job_id)
    out.print(f"stopping {job_id}" if stopped else f"{job_id} was not running ({jobs.status(url, job_id)['status']})",
              markup=False)
