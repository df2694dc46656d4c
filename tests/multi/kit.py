"""Helpers for two gateways sharing one system: their settings, users and keys, concurrent calls
spread over both, and the books read from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from tests.billing.pg import balance_and_ledger, pg_one
from tests.billing.test_workers import REDIS_URL
from tests.multi.servers import MotoS3
from tests.support.pg import fresh_database
from tests.support.processes import Gateway

# One cluster, one key for the channel secrets (each data folder would otherwise make its own).
SECRET_KEY = Fernet.generate_key().decode()

# One call of `fast-model` costs exactly what it reserves: a key's quota buys a known number.
PER_CALL = {"per_call": "0.001"}  # 500 units at the default 500,000 units per USD
CALL_UNITS = 500


def cluster_env(pg_url: str, s3: MotoS3 | None, redis_url: str = REDIS_URL, **extra: str) -> dict[str, str]:
    env = {
        "AITRE_DATABASE_URL": pg_url,
        "AITRE_REDIS_URL": redis_url,
        "AITRE_SECRET_KEY": SECRET_KEY,
        "AITRE_SIMULATOR_ENABLED": "false",
        # Long: what another instance changes must arrive over pub/sub, not by this poll.
        "AITRE_CACHE_REFRESH_SECONDS": "60",
        **(s3.env() if s3 is not None else {}),
    }
    env.update(extra)
    return env


@dataclass
class Pair:
    a: Gateway
    b: Gateway
    pg_url: str

    @property
    def both(self) -> list[Gateway]:
        return [self.a, self.b]

    def admin(self, gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {gw.admin_key}"}
        return httpx.request(method, gw.url + path, headers=headers, timeout=30, **kw)

    def new_user(self, name: str, balance: int, **key: Any) -> tuple[int, int, str]:
        """(user id, key id, key) of a new user with `balance` units and a key with `key`'s limits."""
        user = self.admin(self.a, "POST", "/api/admin/users", json={"username": name, "quota": balance})
        assert user.status_code == 201, user.text
        made = self.admin(self.a, "POST", "/api/admin/keys", json={"user_id": user.json()["id"], **key})
        assert made.status_code == 201, made.text
        return int(user.json()["id"]), int(made.json()["id"]), str(made.json()["key"])

    def books(self, username: str) -> tuple[int, int]:
        """The user's balance column and the sum of the user's ledger."""
        return asyncio.run(balance_and_ledger(self.pg_url, username))

    def one(self, sql: str, *args: Any) -> Any:
        return asyncio.run(pg_one(self.pg_url, sql, *args))


def chat(gw: Gateway, key: str, model: str = "fast-model", **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "Say this is a test"}], **body}
    return httpx.post(
        gw.api + "/chat/completions", json=payload, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def spread(gateways: list[Gateway], key: str, count: int, workers: int = 32, **body: Any) -> Counter[int]:
    """`count` chat calls at once, alternating between the gateways: how many got each status."""
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(chat, gateways[i % len(gateways)], key, **body) for i in range(count)]
        return Counter(f.result().status_code for f in futures)


@contextlib.contextmanager
def started_pair(
    workdir: Path, s3: MotoS3, setup: Callable[[Gateway], None] | None = None, **extra: str
) -> Iterator[Pair]:
    """Two gateways on a fresh database of their own, for the tests of a module to share (each
    with users, keys and models of its own); stopped and the database dropped at the end."""
    loop = asyncio.new_event_loop()
    database = fresh_database()
    url = loop.run_until_complete(database.__aenter__())
    made: list[Gateway] = []
    try:
        env = cluster_env(url, s3, **extra)
        a = Gateway(workdir / "a", **env)
        made.append(a)
        a.start()
        if setup is not None:
            setup(a)
        b = Gateway(workdir / "b", **env)
        made.append(b)
        b.start()
        b.admin_key, b.user_key = a.admin_key, a.user_key
        yield Pair(a, b, url)
    finally:
        for gw in made:
            gw.stop()
        loop.run_until_complete(database.__aexit__(None, None, None))
        loop.close()
