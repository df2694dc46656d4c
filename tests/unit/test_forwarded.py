"""Whose X-Forwarded-For is believed, and which address in it is the client."""

from __future__ import annotations

from aitre.security.forwarded import ForwardedFor


def test_only_trusted_peers_may_name_the_client() -> None:
    f = ForwardedFor(["127.0.0.1", "10.0.0.0/8"])
    assert f.client("127.0.0.1", None) == "127.0.0.1"
    assert f.client("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert f.client("198.51.100.1", "203.0.113.7") == "198.51.100.1"  # not a proxy of ours
    # The right-most address that is not one of our proxies: a client cannot spoof past them.
    assert f.client("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    assert f.client("10.9.9.9", "10.1.1.1, 10.2.2.2") == "10.1.1.1"  # all proxies: the first
    assert f.client("127.0.0.1", " , ") == "127.0.0.1"
    assert not f.trusts("not-an-ip")


def test_a_star_trusts_every_peer() -> None:
    f = ForwardedFor(["*"])
    assert f.client("198.51.100.1", "203.0.113.7") == "203.0.113.7"
