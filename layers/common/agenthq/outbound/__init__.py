"""Calls to tenant-given URLs (webhooks, MCP servers): one guarded HTTP client.

DESIGN §9: https only on AWS; every address a host resolves to must be public
(no loopback, private, link-local — 169.254.169.254 — shared, multicast,
reserved, or their IPv6 and IPv4-in-IPv6 forms), checked at every connect and
connected to as checked, so DNS rebinding cannot slip a private address in
between the check and the connection; redirects are never followed; time and
response size are bounded. Only the local cloud, by its own setting
(``OUTBOUND_ALLOW_LOOPBACK``), allows loopback, so tests and ``make dev`` can
point a webhook or an MCP server at a local script.
"""

from agenthq.outbound.addresses import Resolver, address_refusal, system_resolver
from agenthq.outbound.client import (
    OutboundPolicy,
    OutboundRefused,
    check_url,
    guarded_async_client,
    guarded_client,
)

__all__ = [
    "OutboundPolicy",
    "OutboundRefused",
    "Resolver",
    "address_refusal",
    "check_url",
    "guarded_async_client",
    "guarded_client",
    "system_resolver",
]
