from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import Gateway, Simulator


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(tmp_path_factory.mktemp("sim")).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with its first-start defaults: the built-in simulator as the only channel."""
    gw = Gateway(tmp_path_factory.mktemp("gw")).start()
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """New gateways with their own settings (not started: add channels first); stopped at the end."""
    made: list[Gateway] = []

    def make(**env: str) -> Gateway:
        gw = Gateway(tmp_path / f"gw{len(made)}", **env)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


@pytest.fixture(autouse=True)
async def _close_sdk_clients() -> AsyncIterator[None]:
    from tests.support.clients import close_all

    yield
    await close_all()
