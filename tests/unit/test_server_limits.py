"""The serving process sizes its connection cap from the open-file limit, below it."""

from __future__ import annotations

import subprocess
import sys

from aitre.config import Settings
from aitre.server import connection_cap


def test_cap_is_the_file_limit_less_upstream_redis_and_a_reserve() -> None:
    assert connection_cap(Settings(pool_size=16), 256) == 256 - 16 - 128
    with_redis = Settings(pool_size=16, redis_url="redis://127.0.0.1:6379/0", redis_max_connections=64)
    assert connection_cap(with_redis, 1024) == 1024 - 16 - 64 - 128
    assert connection_cap(Settings(pool_size=512), 256) == 16  # never none at all
    assert connection_cap(Settings(max_connections=7), 100_000) == 7  # the operator's choice


def test_soft_file_limit_is_raised_to_the_hard_one() -> None:
    code = (
        "import resource; from aitre.server import raise_open_file_limit; "
        "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run(
        ["prlimit", "--nofile=200:400", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(maxsplit=1)
    assert out[0] == "400" and out[1].strip() == "(400, 400)"
