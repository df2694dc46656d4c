"""Two gateway instances, each with its own data folder, on one fresh PostgreSQL database, one
Redis and one S3 bucket (moto), in front of one simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.multi.kit import Pair, cluster_env
from tests.multi.servers import MotoS3
from tests.support.pg import fresh_database
from tests.support.processes import Gateway


@pytest.fixture
def pg_url() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    manager = fresh_database()
    try:
        yield loop.run_until_complete(manager.__aenter__())
    finally:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(scope="package")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def make_pair(
    make_gateway: Callable[..., Gateway], pg_url: str, s3: MotoS3, tmp_path: Path
) -> Callable[..., Pair]:
    """Two started gateways on one database, Redis and bucket (extra settings for both)."""

    def make(setup: Callable[[Gateway], None] | None = None, **extra: str) -> Pair:
        env = cluster_env(pg_url, s3, **extra)
        a = make_gateway(**env)
        a.start()
        if setup is not None:
            setup(a)
        b = make_gateway(**env)
        b.start()
        b.admin_key, b.user_key = a.admin_key, a.user_key
        return Pair(a, b, pg_url)

    return make
