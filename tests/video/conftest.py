"""A gateway whose built-in simulator channel serves the video models (its first-start defaults),
tasks polled often and the simulator's video clock fast, so a video is made in well under a
second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import Gateway
from tests.video.kit import FAST, Videos, fast_gateway, new_user


@pytest.fixture(scope="package")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = fast_gateway(Gateway(tmp_path_factory.mktemp("video-gw"), **FAST))
    yield g
    g.stop()


@pytest.fixture
def user(gw: Gateway) -> Videos:
    """A new user with $20 and a key."""
    return Videos(gw, new_user(gw, "20"))
