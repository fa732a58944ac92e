"""The guarded HTTP client (agenthq.outbound) against real sockets on loopback: what a tenant-given URL
may reach, checked at every connect (DNS rebinding), redirects never followed, size and time bounded."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from agenthq.outbound import (
    OutboundPolicy,
    OutboundRefused,
    address_refusal,
    check_url,
    guarded_async_client,
    guarded_client,
)

LOCAL = OutboundPolicy(allow_loopback=True, timeout_seconds=2, max_response_bytes=1000)
AWS = OutboundPolicy(allow_loopback=False)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.5.5.5", "::1", "10.0.0.1", "172.16.3.4", "192.168.1.1", "100.64.0.1",
    "169.254.169.254", "fe80::1", "fd00::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1",
    "::ffff:169.254.169.254", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:a9fe:a9fe::1", "64:ff9b::a9fe:a9fe",
    "192.0.2.1", "198.18.0.1",
])
def test_no_address_outside_the_public_internet_is_reachable_on_aws(address: str) -> None:
    assert address_refusal(address, allow_loopback=False) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"])
def test_public_addresses_are_reachable(address: str) -> None:
    assert address_refusal(address, allow_loopback=False) is None


def test_the_local_setting_allows_loopback_only() -> None:
    assert address_refusal("127.0.0.1", allow_loopback=True) is None
    assert address_refusal("::ffff:127.0.0.1", allow_loopback=True) is None
    for address in ("10.0.0.1", "169.254.169.254", "::ffff:169.254.169.254", "192.168.0.1"):
        assert address_refusal(address, allow_loopback=True) is not None


def _resolver(*answers: list[str]):
    """A resolver that gives its answers in turn (the last one from then on): DNS rebinding."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]
    return resolve, calls


@pytest.mark.parametrize("url, reason", [
    ("http://example.com/hook", "scheme"), ("ftp://example.com/", "scheme"), ("file:///etc/passwd", "scheme"),
    ("https://user:pw@example.com/", "host"), ("https:///nohost", "host"), ("not a url", "scheme"),
])
def test_registration_refuses_urls_that_are_not_plain_https(url: str, reason: str) -> None:
    resolve, _ = _resolver(["93.184.215.14"])
    with pytest.raises(OutboundRefused) as refused:
        check_url(url, AWS, resolve)
    assert refused.value.reason == reason


@pytest.mark.parametrize("host", ["a" * 64 + ".example.com", "0" * 3000, "a..example.com", ".".join(["a" * 60] * 5)])
def test_a_host_no_resolver_can_encode_is_refused_not_a_crash(host: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        check_url(f"https://{host}/", AWS)
    assert refused.value.reason == "host" and len(refused.value.message) < 100


def test_registration_refuses_a_host_with_any_private_address() -> None:
    resolve, _ = _resolver(["93.184.215.14", "10.1.2.3"])
    with pytest.raises(OutboundRefused) as refused:
        check_url("https://mixed.example/", AWS, resolve)
    assert refused.value.reason == "address" and "private" in refused.value.message
    check_url("https://public.example/", AWS, _resolver(["93.184.215.14"])[0])


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the bound is counted while reading
            self.wfile.write(b"x" * 5000)
        elif self.path == "/declared-big":
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"x" * 5000)
        elif self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"y")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.protocol_version = "HTTP/1.0"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_a_loopback_receiver_is_reached_with_the_local_setting(receiver: int) -> None:
    resolve, calls = _resolver(["127.0.0.1"])
    with guarded_client(LOCAL, resolver=resolve) as client:
        response = client.get(f"http://hooks.test:{receiver}/")
    assert response.status_code == 200 and response.text == "hello" and calls == ["hooks.test"]


def test_loopback_is_refused_with_the_aws_setting(receiver: int) -> None:
    with guarded_client(OutboundPolicy(allow_loopback=False), resolver=_resolver(["127.0.0.1"])[0]) as client:
        with pytest.raises(OutboundRefused) as refused:
            client.get(f"https://hooks.test:{receiver}/")
    assert refused.value.reason == "address"


def test_dns_rebinding_is_refused_at_connect(receiver: int) -> None:
    """The name was public when registered; at delivery it resolves to the metadata service."""
    resolve, calls = _resolver(["93.184.215.14"], ["169.254.169.254"])
    check_url(f"http://rebind.test:{receiver}/", LOCAL, resolve)
    with guarded_client(LOCAL, resolver=resolve) as client:
        with pytest.raises(OutboundRefused) as refused:
            client.get(f"http://rebind.test:{receiver}/")
    assert refused.value.reason == "address" and "link-local" in refused.value.message
    assert calls == ["rebind.test", "rebind.test"]


def test_the_checked_address_is_the_one_connected_to(receiver: int) -> None:
    """The client connects to the address it checked, not to what the host resolves to afterwards."""
    resolve, calls = _resolver(["127.0.0.1"], ["10.9.9.9"])
    with guarded_client(LOCAL, resolver=resolve) as client:
        assert client.get(f"http://a.test:{receiver}/").status_code == 200
    assert calls == ["a.test"]


def test_redirects_are_answers_not_hops(receiver: int) -> None:
    with guarded_client(LOCAL, resolver=_resolver(["127.0.0.1"])[0]) as client:
        response = client.get(f"http://a.test:{receiver}/redirect")
    assert response.status_code == 302 and not response.history


@pytest.mark.parametrize("path", ["/big", "/declared-big"])
def test_a_response_larger_than_the_bound_is_cut_off(receiver: int, path: str) -> None:
    with guarded_client(LOCAL, resolver=_resolver(["127.0.0.1"])[0]) as client:
        with pytest.raises(OutboundRefused) as refused:
            client.get(f"http://a.test:{receiver}{path}")
    assert refused.value.reason == "too_large"


def test_a_response_that_trickles_past_the_deadline_is_cut_off(receiver: int) -> None:
    policy = OutboundPolicy(allow_loopback=True, timeout_seconds=1, max_response_bytes=1000)
    with guarded_client(policy, resolver=_resolver(["127.0.0.1"])[0]) as client:
        with pytest.raises(OutboundRefused) as refused:
            client.get(f"http://a.test:{receiver}/slow")
    assert refused.value.reason == "timeout"


def test_http_is_refused_without_the_local_setting() -> None:
    with guarded_client(AWS, resolver=_resolver(["93.184.215.14"])[0]) as client:
        with pytest.raises(OutboundRefused) as refused:
            client.get("http://example.com/")
    assert refused.value.reason == "scheme"


def test_environment_proxies_are_ignored(receiver: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would connect on our behalf to an address we never checked."""
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.1:3128")
    with guarded_client(LOCAL, resolver=_resolver(["127.0.0.1"])[0]) as client:
        assert client.get(f"http://a.test:{receiver}/").status_code == 200


def test_the_async_client_holds_the_same_guard(receiver: int) -> None:
    async def main() -> None:
        ok = guarded_async_client(LOCAL, resolver=_resolver(["127.0.0.1"])[0], headers={"x-test": "1"},
                                  timeout=httpx.Timeout(60))
        async with ok:
            assert (await ok.get(f"http://a.test:{receiver}/")).text == "hello"
            assert ok.timeout.read == LOCAL.timeout_seconds  # a caller's timeout only shortens the policy's
            with pytest.raises(OutboundRefused) as too_large:
                await ok.get(f"http://a.test:{receiver}/big")
            assert too_large.value.reason == "too_large"
        rebound = guarded_async_client(LOCAL, resolver=_resolver(["127.0.0.1"], ["169.254.169.254"])[0])
        async with rebound:
            await rebound.get(f"http://b.test:{receiver}/")
            with pytest.raises(OutboundRefused):
                await rebound.get(f"http://c.test:{receiver}/")
    asyncio.run(main())
