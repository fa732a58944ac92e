"""`agenthq` against a deployed (https://) API: it watches runs on the WebSocket API the
deployment announces, over TLS, and never opens a connection to a loopback WebSocket
(issue 18: it used to keep ws://127.0.0.1:3001 and would have sent the token there in clear).

The deployment is a stand-in served over TLS on this machine's host name (not a loopback
name, so the CLI treats it as remote): its REST part answers login, the announcement
(``/console/config.json``) and a run, and its WebSocket part (``websockets``' server) records
each connection and plays a run's events. The CLI runs as a user runs it (a separate
process) and trusts the stand-in's self-signed certificate through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from local.template import ROOT

HOST = socket.gethostname().lower()
RUN_ID = "01RUNOVERTLS000000000000000"
WORKSPACE_ID = "01WSOVERTLS0000000000000000"
TOKEN = "e30." + base64.urlsafe_b64encode(json.dumps({"wid": WORKSPACE_ID}).encode()).decode().rstrip("=") + ".sig"


def _resolves_to_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, socket.AF_INET))
    except (OSError, ValueError):
        return False


pytestmark = pytest.mark.skipif(
    HOST in ("localhost", "") or not _resolves_to_loopback(HOST),
    reason="needs a host name, other than localhost, that this machine resolves to a loopback address")


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Deployment:
    api_url: str = ""
    live_url: str = ""
    cert: Path = Path()
    requests: list[str] = field(default_factory=list)  # "METHOD /path" of each REST request
    connections: list[dict[str, str]] = field(default_factory=list)  # the headers of each WebSocket connection
    said: str = "[/bold] [link=https://evil.example]click[/link]"


@pytest.fixture()
def deployment(tmp_path) -> Iterator[Deployment]:
    from websockets.sync.server import serve

    seen = Deployment()
    seen.cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(seen.cert, key)

    def play(ws: Any) -> None:
        seen.connections.append({k.lower(): v for k, v in ws.request.headers.raw_items()})
        subscribe = json.loads(ws.recv(timeout=10))
        assert subscribe == {"action": "subscribe", "run_id": RUN_ID, "after": 0}, subscribe
        for seq, kind, data in ((1, "run.started", {}), (2, "tool.result", {"text": seen.said}),
                                (3, "run.succeeded", {"output": "done"})):
            ws.send(json.dumps({"type": "run.event", "run_id": RUN_ID, "seq": seq,
                                "event": {"seq": seq, "type": kind, "at": "2026-12-07T00:00:00Z", "data": data}}))

    class Rest(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.requests.append(f"GET {self.path}")
            if self.path == "/v1/console/config.json":
                self._answer(200, {"live_url": seen.live_url, "region": "eu-west-1", "version": "0.1.0"})
            elif self.path == f"/v1/workspaces/{WORKSPACE_ID}/runs/{RUN_ID}":
                assert self.headers["Authorization"] == f"Bearer {TOKEN}"
                self._answer(200, {"id": RUN_ID, "status": "running"})
            else:
                self._answer(404, {"error": {"code": "not_found", "message": "Not found.", "request_id": "r"}})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            seen.requests.append(f"POST {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/v1/auth/login":
                self._answer(200, {"access_token": TOKEN, "refresh_token": "refresh", "expires_in": 900})
            else:
                self._answer(404, {"error": {"code": "not_found", "message": "Not found.", "request_id": "r"}})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    rest = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
    rest.socket = context.wrap_socket(rest.socket, server_side=True)
    live = serve(play, "127.0.0.1", 0, ssl=context)
    seen.api_url = f"https://{HOST}:{rest.server_address[1]}/v1"
    seen.live_url = f"wss://{HOST}:{live.socket.getsockname()[1]}/v1"
    threads = [threading.Thread(target=rest.serve_forever, daemon=True),
               threading.Thread(target=live.serve_forever, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        rest.shutdown()
        rest.server_close()
        live.shutdown()


@pytest.fixture()
def loopback_trap() -> Iterator[tuple[str, list[Any]]]:
    """A loopback port that records every connection made to it (a stale ws://127.0.0.1 URL points here)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    caught: list[Any] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                conn, address = listener.accept()
            except (TimeoutError, OSError):
                continue
            caught.append(address)
            conn.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{listener.getsockname()[1]}/v1", caught
    stop.set()
    thread.join(2)
    listener.close()


def agenthq(deployment: Deployment, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                   "AGENTHQ_CONFIG_DIR": str(home / "config"), "PYTHONPATH": str(ROOT / "cli"),
                   "SSL_CERT_FILE": str(deployment.cert), **env}
    return subprocess.run([sys.executable, "-m", "agenthq_cli", *args], env=environment, capture_output=True,
                          text=True, timeout=60)


def test_login_to_an_https_api_then_watch_uses_the_announced_wss_api_and_no_loopback(deployment, tmp_path,
                                                                                      loopback_trap):
    done = agenthq(deployment, tmp_path, "login", "--api-url", deployment.api_url, "--email", "a@example.com",
                   "--password", "a-long-password")
    assert done.returncode == 0, done.stderr
    stored = json.loads((tmp_path / "config" / "agenthq" / "config.json").read_text())
    assert (stored["api_url"], stored["ws_url"]) == (deployment.api_url, deployment.live_url)

    watched = agenthq(deployment, tmp_path, "runs", "watch", RUN_ID, "--exit-status")
    assert watched.returncode == 0, watched.stderr
    assert [c["authorization"] for c in deployment.connections] == [f"Bearer {TOKEN}"], "one wss connection"
    assert "run.succeeded" in watched.stdout
    assert f"text={deployment.said}" in watched.stdout, "event text printed as it is, not as markup"
    assert loopback_trap[1] == []


def test_a_stored_loopback_websocket_url_is_not_used_for_a_remote_api(deployment, tmp_path, loopback_trap):
    """What a CLI before this fix stored for every login: the local cloud's ws://127.0.0.1:3001."""
    stale, caught = loopback_trap
    config = tmp_path / "config" / "agenthq" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"api_url": deployment.api_url, "ws_url": stale, "access_token": TOKEN,
                                  "refresh_token": "refresh", "workspace_id": WORKSPACE_ID, "email": "a@example.com"}))
    watched = agenthq(deployment, tmp_path, "runs", "watch", RUN_ID, "--json", "--exit-status")
    assert watched.returncode == 0, watched.stderr
    assert caught == [], "nothing connected to the loopback WebSocket"
    assert len(deployment.connections) == 1 and [json.loads(line)["seq"] for line in
                                                 watched.stdout.splitlines()] == [1, 2, 3]


def test_a_remote_api_that_announces_no_websocket_api_is_an_error_not_a_loopback_guess(deployment, tmp_path,
                                                                                       loopback_trap):
    deployment.live_url = ""
    config = tmp_path / "config" / "agenthq" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"api_url": deployment.api_url, "ws_url": loopback_trap[0], "access_token": TOKEN,
                                  "workspace_id": WORKSPACE_ID}))
    watched = agenthq(deployment, tmp_path, "runs", "watch", RUN_ID)
    assert watched.returncode == 1
    assert "announces no WebSocket API" in watched.stderr and "AGENTHQ_WS_URL" in watched.stderr
    assert loopback_trap[1] == [] and deployment.connections == []
