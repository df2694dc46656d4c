"""Who is calling: resolve a bearer key to the key's and user's facts, from memory when possible.

The cache holds positive and negative lookups; it is dropped whole whenever the catalog version
changes (a key was revoked, a user disabled), so a revocation takes effect within
`cache_refresh_seconds` on every instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.accounts.keys import hash_key
from aitre.store.models import Token, User

_NEGATIVE_CAP = 10_000
IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class Caller:
    """The key and user behind a request, with the key's limits (checked in `accounts.policy`)."""

    token_id: int
    token_name: str
    user_id: int
    username: str
    role: str
    group: str
    expires_at: int | None = None  # ms since the epoch
    allowed_models: frozenset[str] | None = None
    allowed_ips: tuple[IPNetwork, ...] | None = None
    rpm: int = 0
    tpm: int = 0
    model_mapping: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class KeyCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._known: dict[str, Caller] = {}
        self._unknown: set[str] = set()

    def clear(self) -> None:
        self._known.clear()
        self._unknown.clear()

    async def resolve(self, key: str) -> Caller | None:
        digest = hash_key(key)
        caller = self._known.get(digest)
        if caller is not None:
            return caller
        if digest in self._unknown:
            return None
        caller = await self._load(digest)
        if caller is None:
            # Bounded: random keys from an attacker must not grow memory without limit.
            if len(self._unknown) >= _NEGATIVE_CAP:
                self._unknown.clear()
            self._unknown.add(digest)
        else:
            self._known[digest] = caller
        return caller

    async def _load(self, digest: str) -> Caller | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Token, User).join(User, User.id == Token.user_id).where(Token.key_hash == digest)
                )
            ).first()
        if row is None:
            return None
        token, user = row
        if not token.enabled or not user.enabled:
            return None
        return caller_for(token, user)


def caller_for(token: Token, user: User) -> Caller:
    """The caller a key row and its user's row stand for (their status is the caller's to check)."""
    return Caller(
        token_id=token.id,
        token_name=token.name,
        user_id=user.id,
        username=user.username,
        role=user.role,
        group=user.group_name,
        expires_at=token.expires_at,
        allowed_models=frozenset(token.allowed_models) if token.allowed_models else None,
        allowed_ips=tuple(ip_network(c, strict=False) for c in token.allowed_ips)
        if token.allowed_ips
        else None,
        rpm=token.rpm or 0,
        tpm=token.tpm or 0,
        model_mapping=dict(token.model_mapping or {}),
    )
