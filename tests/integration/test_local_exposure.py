"""The local cloud's own stores answer this machine only, and no web page (issue 18).

DynamoDB Local (the table) and moto's server (SSM with the JWT signing keys,
Secrets Manager with the Anthropic key, the gateway's keys) have no
authentication. DynamoDBLocal.jar listens on every interface and allows every
origin by default; moto's server allows every origin. So anyone on the network
could read the table, and any web page open in the developer's browser could
read the signing keys (and forge any user's token) with a cross-origin request.
Both now listen on 127.0.0.1 only and answer no other origin (docs/decisions.md 172).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx
import pytest

from local.dynamodb_local import can_run_source

EVIL = "https://evil.example"


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (Linux: /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(_address(address, width))
    return found


def _address(hex_address: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    if width == 8:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # four host-order 32-bit words
    v6 = ipaddress.IPv6Address(words)
    return str(v6.ipv4_mapped or v6)


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port, url
    return port


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table (Linux)")
def test_dynamodb_local_and_motos_server_listen_on_loopback_only(cloud):
    import shutil

    java = shutil.which("java")
    if java is None or not can_run_source(java):
        pytest.skip("a JRE without the compiler module runs DynamoDB Local on every interface (a warning says so)")
    for name, url in (("DynamoDB Local", cloud.dynamodb_endpoint), ("moto's server", cloud.moto_server.url)):
        addresses = listening_addresses(port_of(url))
        assert addresses == {"127.0.0.1"}, (name, addresses)


def test_neither_answers_a_web_page_of_another_origin(cloud):
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-amz-target,authorization"}
    ssm_read = {"Origin": EVIL, "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.GetParameter",
                "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261207/us-east-1/ssm/aws4_request, "
                                 "SignedHeaders=host, Signature=0"}
    for name, url in (("DynamoDB Local", cloud.dynamodb_endpoint), ("moto's server", cloud.moto_server.url)):
        asked = httpx.options(url + "/", headers=preflight, timeout=30)
        assert "access-control-allow-origin" not in asked.headers, (name, dict(asked.headers))
        sent = httpx.post(url + "/", headers=ssm_read, content=b'{"Name": "x"}', timeout=30)
        assert "access-control-allow-origin" not in sent.headers, (name, dict(sent.headers))


def test_moto_server_refuses_to_listen_beyond_loopback():
    from local.moto_access import MotoServer

    with pytest.raises(ValueError, match="loopback"):
        MotoServer(host="0.0.0.0")  # nosec B104  # the point: refused
