from __future__ import annotations

from collections.abc import Iterator

import pytest

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


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory, stub: StubUpstream) -> Iterator[Gateway]:
    """One gateway running the stub kind, shared by the tests that need nothing special (default
    address policy: private notifyHooks refused)."""
    gateway = Gateway(tmp_path_factory.mktemp("gw"), **FAST)
    start_gateway(gateway, stub)
    yield gateway
    gateway.stop()
