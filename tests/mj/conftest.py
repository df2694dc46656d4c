"""A gateway whose built-in simulator channel serves MJ (its first-start defaults), its tasks
polled often and the simulator's MJ clock fast, so a task ends in a fraction of a second."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.mj.kit import Mj, new_user
from tests.support.processes import Gateway

FAST = {"AITRE_TASK_POLL_MIN_SECONDS": "0.05", "AITRE_TASK_POLL_MAX_SECONDS": "0.2"}


def fast_gateway(gw: Gateway) -> Gateway:
    gw.start()
    httpx.post(gw.url + "/sim/_sim/config", json={"mj_step_seconds": 0.05}).raise_for_status()
    return gw


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
