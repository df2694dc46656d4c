"""The client's address behind a trusted reverse proxy (X-Forwarded-For).

uvicorn's proxy-headers middleware does this for every request, header or not; the gateway
reads the header only when it is there and only for the two places that need the address (a
key's IP allow-list, the usage log). Same rule as uvicorn: only peers in
`AITRE_FORWARDED_ALLOW_IPS` are believed, and the client is the right-most address in the
header that is not itself a trusted proxy.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network


class ForwardedFor:
    def __init__(self, trusted: list[str]) -> None:
        self.any = "*" in trusted
        self._hosts: set[str] = set()
        self._networks: list[IPv4Network | IPv6Network] = []
        for item in trusted:
            if item == "*":
                continue
            net = ip_network(item, strict=False)
            if net.num_addresses == 1:
                self._hosts.add(str(net.network_address))
            else:
                self._networks.append(net)

    def trusts(self, host: str) -> bool:
        if self.any or host in self._hosts:
            return True
        if not self._networks:
            return False
        try:
            address = ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._networks)

    def client(self, peer: str, header: str | None) -> str:
        """The client's address: the peer's, unless a trusted peer forwarded for someone."""
        if not header or not self.trusts(peer):
            return peer
        hops = [h.strip() for h in header.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer
