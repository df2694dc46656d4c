from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.admin.helpers import Api
from tests.support.processes import Gateway


@pytest.fixture(scope="package")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the admin API tests (they change prices and users: not the shared one)."""
    g = Gateway(tmp_path_factory.mktemp("admin-gw")).start()
    yield g
    g.stop()


@pytest.fixture(scope="package")
def api(gw: Gateway) -> Iterator[Api]:
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        yield Api(gw, client)
