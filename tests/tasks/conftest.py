from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.pg import fresh_database
from tests.support.processes import Gateway
from tests.tasks.kit import FAST, HookReceiver, StubUpstream, start_gateway


@pytest.fixture(scope="session")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubUpstream]:
    upstream = StubUpstream(tmp_path_factory.mktemp("stub")).start()
    yield upstream
    upstream.stop()


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    receiver = HookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def gw(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, stub: StubUpstream
) -> Iterator[Gateway]:
    """One gateway running the stub kind, shared by the tests that need nothing special (default
    address policy: private notifyHooks refused); once on SQLite, once on PostgreSQL (a fresh
    database of its own), so the engine's claims and statements are tried on both."""
    if request.param == "sqlite":
        gateway = Gateway(tmp_path_factory.mktemp("gw"), **FAST)
        start_gateway(gateway, stub)
        yield gateway
        gateway.stop()
        return
    loop = asyncio.new_event_loop()
    database = fresh_database()
    url = loop.run_until_complete(database.__aenter__())
    try:
        gateway = Gateway(tmp_path_factory.mktemp("gw-pg"), AITRE_DATABASE_URL=url, **FAST)
        start_gateway(gateway, stub)
        yield gateway
        gateway.stop()
    finally:
        loop.run_until_complete(database.__aexit__(None, None, None))
        loop.close()
