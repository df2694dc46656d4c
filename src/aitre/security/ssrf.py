"""Which addresses the gateway may connect to when it fetches a URL a client gave it.

Only public (globally routable) addresses, unless the operator allows more with
`AITRE_FETCH_ALLOW_PRIVATE` or lists exceptions in `AITRE_FETCH_ALLOWED_CIDRS`. The check runs
on the resolved addresses of every connection (a resolver that drops refused addresses), so a
DNS name that points inside, or a redirect to an internal address, is refused just the same.
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


class AddressPolicy:
    def __init__(self, allow_private: bool = False, allowed_cidrs: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed: list[Network] = [ipaddress.ip_network(c, strict=False) for c in allowed_cidrs]

    def permits(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed):
            return True
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
