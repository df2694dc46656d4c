"""Which addresses the gateway may connect to when it fetches a URL a client gave it.

Only public (globally routable) addresses, unless the operator allows more with
`AITRE_FETCH_ALLOW_PRIVATE` or lists exceptions in `AITRE_FETCH_ALLOWED_CIDRS`. The check runs
on the resolved addresses of every connection (a resolver that drops refused addresses), so a
DNS name that points inside, or a redirect to an internal address, is refused just the same.

IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`)
are judged by that address: a NAT64 gateway or 6to4 relay would deliver to it. Ranges whose
destination the address does not tell (IPv4-compatible `::/96`, long deprecated; Teredo
`2001::/32`; local-use NAT64 `64:ff9b:1::/48`, whose translator is the operator's own) are
refused, unless `AITRE_FETCH_ALLOWED_CIDRS` lists them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_OPAQUE = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (and :: / ::1)
    ipaddress.IPv6Network("2001::/32"),  # Teredo
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64
)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a packet to `ip` is delivered to, for the forms that carry one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


class AddressPolicy:
    def __init__(self, allow_private: bool = False, allowed_cidrs: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed: list[Network] = [ipaddress.ip_network(c, strict=False) for c in allowed_cidrs]

    def permits(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if any(ip in net for net in self.allowed):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            inner = embedded_ipv4(ip)
            if inner is not None:
                return self.permits(inner)
            if any(ip in net for net in _OPAQUE) and not self.allow_private:
                return False
        if ip.is_unspecified or ip.is_multicast:
            return False
        return self.allow_private or ip.is_global


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class AddressRefused(OSError):
    """A name that resolves only to addresses the policy refuses."""


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then keeps only the addresses the policy permits."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.permits(r["host"])]
        if not allowed:
            raise AddressRefused(f"{host} resolves only to addresses this gateway may not fetch from")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def describe(exc: Any) -> str:
    return str(exc) or type(exc).__name__
