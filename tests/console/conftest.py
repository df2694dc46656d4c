from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mj.kit import FAST, fast_gateway
from tests.support.processes import Gateway


@pytest.fixture(scope="package")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the console tests; its built-in simulator draws MJ tasks fast."""
    g = fast_gateway(Gateway(tmp_path_factory.mktemp("console-gw"), **FAST))
    yield g
    g.stop()
