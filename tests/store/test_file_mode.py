"""The SQLite database holds balances, key hashes and encrypted upstream secrets: the gateway
creates it readable by its owner only, and SQLite gives its -wal and -shm files the same mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Gateway


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask (022): without care, new files would be world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_database_files_are_created_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    gw = Gateway(tmp_path / "gw").start()
    try:
        assert gw.chat(gw.user_key).status_code == 200  # the process has written: WAL files exist
        db = gw.data_dir / "aitre.db"
        files = [db, db.with_name("aitre.db-wal"), db.with_name("aitre.db-shm")]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        assert modes == dict.fromkeys(modes, 0o600), {k: oct(v) for k, v in modes.items()}
    finally:
        gw.stop()
