"""The local media store behind its interface: unguessable names, byte ranges, delete, retention."""

from __future__ import annotations

import os
import time
from pathlib import Path

from aitre.media.store import LocalMediaStore, MediaStore

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


async def _read(store: MediaStore, name: str, start: int = 0, end: int | None = None) -> bytes | None:
    stream = await store.open(name, start, end)
    if stream is None:
        return None
    return b"".join([chunk async for chunk in stream])


async def test_save_stat_open_ranges_and_delete(tmp_path: Path) -> None:
    store: MediaStore = LocalMediaStore(tmp_path, "https://gw.example/")
    first = await store.save(PNG)
    second = await store.save(PNG)
    assert first.name != second.name and len(first.name.split(".")[0]) == 22  # 128 random bits
    assert first.name.endswith(".png") and first.content_type == "image/png" and first.size == len(PNG)
    assert first.url == f"https://gw.example/media/{first.name}" == store.url(first.name)
    info = await store.stat(first.name)
    assert info is not None and (info.size, info.content_type) == (len(PNG), "image/png")
    assert await _read(store, first.name) == PNG
    assert await _read(store, first.name, 2, 5) == PNG[2:6]
    assert await _read(store, first.name, 100) == PNG[100:]
    assert await _read(store, first.name, len(PNG) + 10) == b""
    assert await store.delete(first.name) is True
    assert await store.delete(first.name) is False
    assert await store.stat(first.name) is None and await _read(store, first.name) is None
    for bad in ("../secret.key", "x.png", first.name.replace(".png", ".exe!")):
        assert store.locate(bad) is None and await store.stat(bad) is None


async def test_save_file_takes_the_file(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media", "http://gw")
    src = tmp_path / "clip.bin"
    src.write_bytes(PNG)
    kept = await store.save_file(src)
    assert not src.exists()
    assert kept.name.endswith(".png") and kept.size == len(PNG)
    assert await _read(store, kept.name) == PNG


async def test_retention_removes_only_old_files(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path, "http://gw")
    old, new = await store.save(PNG), await store.save(PNG)
    path = store.locate(old.name)
    assert path is not None
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    assert await store.sweep(600) == 1
    assert await store.stat(old.name) is None and await store.stat(new.name) is not None
