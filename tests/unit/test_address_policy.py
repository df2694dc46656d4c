"""`AddressPolicy`: IPv6 forms that carry an IPv4 address are judged by that address, and the
tunnelling ranges whose real destination cannot be read off the address are refused."""

from __future__ import annotations

import pytest

from aitre.security.ssrf import AddressPolicy

PUBLIC_V4 = "8.8.8.8"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "169.254.169.254",
        "10.1.2.3",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",  # NAT64 well-known prefix -> 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 -> 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 -> 10.0.0.1
        "64:ff9b:1::808:808",  # local-use NAT64: the prefix is the operator's own
        "2002:7f00:1::1",  # 6to4 via 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 via 169.254.169.254
        "2002:c0a8:101::1",  # 6to4 via 192.168.1.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1 (deprecated form)
        "::808:808",  # IPv4-compatible, even of a public address
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001::1",
        "224.0.0.1",
        "0.0.0.0",
    ],
)
def test_refused(address: str) -> None:
    assert not AddressPolicy().permits(address)


@pytest.mark.parametrize(
    "address", [PUBLIC_V4, "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    """NAT64 (DNS64 on IPv6-only networks) and 6to4 of a public IPv4 address reach a public host."""
    assert AddressPolicy().permits(address)


def test_allowed_ranges_apply_to_the_embedded_address_too() -> None:
    policy = AddressPolicy(allowed_cidrs=["127.0.0.5/32"])
    assert policy.permits("127.0.0.5")
    assert policy.permits("::ffff:127.0.0.5")
    assert policy.permits("64:ff9b::7f00:5")
    assert not policy.permits("64:ff9b::7f00:1")
    assert not policy.permits("::7f00:5")  # IPv4-compatible: refused whatever it embeds


def test_allow_private_still_refuses_unspecified_and_multicast() -> None:
    policy = AddressPolicy(allow_private=True)
    assert policy.permits("64:ff9b::7f00:1") and policy.permits("10.0.0.1")
    assert not policy.permits("::ffff:0.0.0.0") and not policy.permits("ff02::1")
