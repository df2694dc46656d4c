"""One gateway for the package: videos by chat through a `chat-video` channel on the session's
simulator, removals on the local engine or relayed; the simulator's clock fast before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chattask.kit import FAST, configure_simulator, start
from tests.support.processes import Gateway, Simulator


@pytest.fixture(scope="package")
def gw(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator) -> Iterator[Gateway]:
    g = start(Gateway(tmp_path_factory.mktemp("videochat-gw"), **FAST), simulator)
    yield g
    g.stop()


@pytest.fixture(autouse=True)
def _fast_simulator(simulator: Simulator) -> Iterator[None]:
    configure_simulator(simulator)
    yield
    simulator.reset()  # fault rules a test set
