"""A gateway whose built-in simulator channel serves MJ (its first-start defaults), its tasks
polled often and the simulator's MJ clock fast, so a task ends in a fraction of a second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mj.kit import FAST, Mj, fast_gateway, new_user
from tests.support.processes import Gateway


@pytest.fixture(scope="package")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = fast_gateway(Gateway(tmp_path_factory.mktemp("mj-gw"), **FAST))
    yield g
    g.stop()


@pytest.fixture
def mj(gw: Gateway) -> Iterator[Mj]:
    """A new user with $10 and a key, calling with `Authorization: Bearer`."""
    with Mj(gw, new_user(gw, "10")) as client:
        yield client
