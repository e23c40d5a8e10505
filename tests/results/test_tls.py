"""`rediss://` with a password: the store works through TLS (a real TLS endpoint in front of a real
redis-server), verifies the server's certificate, and never prints the password — in errors, in the CLI or in
the dashboard."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import RedisServer, _free_port, in_process
from tunelab.results import ResultStore, StoreError

PASSWORD = "s3cret-pw"


def _certs(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, as an operator would make one)."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class TLSFront:
    """A TLS endpoint forwarding to a plain redis-server: what a managed Redis with TLS looks like to a client."""

    def __init__(self, backend_port: int, cert: Path, key: Path):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.backend = backend_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            client = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        backend = socket.create_connection(("127.0.0.1", self.backend))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(backend, client), daemon=True).start()
        pump(client, backend)

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    server = RedisServer(tmp / "redis", password=PASSWORD).start()
    cert, _key = _certs(tmp)
    front = TLSFront(server.port, cert, _key)
    yield front, cert
    front.close()
    server.stop()


def test_rediss_with_password_works_and_verifies_the_certificate(tls_redis):
    front, cert = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{front.port}/0?ssl_ca_certs={cert}&ssl_cert_reqs=required"
    store = ResultStore.from_url(url)
    store.start_run("tls-run", kind="train", name="over TLS", dataset="mnist", labels="fine", config={})
    assert store.get_run("tls-run")["name"] == "over TLS"
    # without the CA the client refuses the self-signed certificate: one line, no password
    with pytest.raises(StoreError) as e:
        ResultStore.from_url(f"rediss://:{PASSWORD}@127.0.0.1:{front.port}/0?ssl_cert_reqs=required")
    assert "cannot reach Redis" in str(e.value) and PASSWORD not in str(e.value) and "***" in str(e.value)


def test_the_password_never_shows(tls_redis, monkeypatch, capsys):
    front, cert = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{front.port}/0?ssl_ca_certs={cert}&ssl_cert_reqs=required"
    ok = in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": url}, "store", "status", "--json")
    assert ok.returncode == 0 and PASSWORD not in ok.stdout + ok.stderr and "***" in ok.stdout
    wrong = url.replace(PASSWORD, "wrong-pw")
    bad = in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": wrong}, "runs")
    assert bad.returncode == 2 and "wrong-pw" not in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr

    from fastapi.testclient import TestClient

    from tunelab.dashboards.web import create_app

    with TestClient(create_app(lambda: ResultStore.from_url(url))) as c:
        health = c.get("/api/health").json()
        page = c.get("/runs").text
    assert PASSWORD not in str(health) + page and health["store"].startswith("rediss://:***@127.0.0.1")


def test_nothing_listens_where_a_dead_url_points():
    port = _free_port()
    with pytest.raises(StoreError, match="cannot reach Redis"):
        ResultStore.from_url(f"rediss://:{PASSWORD}@127.0.0.1:{port}/0")
