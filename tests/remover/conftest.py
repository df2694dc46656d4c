"""Synthetic clips made once per session, and removers whose workers are stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from aitre.watermark import RemoverConfig, WatermarkRemover
from aitre.watermark.template import MarkTemplate
from tests.remover.clips import ClipSpec, MadeClip, make_clips


@pytest.fixture(scope="session")
def template() -> MarkTemplate:
    return MarkTemplate.load(None, 720)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory, template: MarkTemplate) -> MadeClip:
    """640×360, 24 fps, 3 s, AAC tone; the mark jumps between three spots every second."""
    return make_clips(tmp_path_factory.mktemp("clip"), ClipSpec(), template)


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory, template: MarkTemplate) -> MadeClip:
    """480×270, 2 s: for tests of the pool, where the picture does not matter."""
    spec = ClipSpec(width=480, height=270, seconds=2.0, jump_every=0.7)
    return make_clips(tmp_path_factory.mktemp("small"), spec, template)


@pytest.fixture
async def make_remover() -> AsyncIterator[Callable[..., WatermarkRemover]]:
    made: list[WatermarkRemover] = []

    def make(**config: object) -> WatermarkRemover:
        remover = WatermarkRemover(RemoverConfig(**config))  # type: ignore[arg-type]
        made.append(remover)
        return remover

    yield make
    for remover in made:
        await remover.close()


def worker_pids() -> set[int]:
    """This test process's remover workers."""
    import psutil

    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if "aitre.watermark.worker" in " ".join(child.cmdline())
    }
