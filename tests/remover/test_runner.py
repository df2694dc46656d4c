"""The worker-process pool: bounded queue, cancellation, a crashed worker, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from aitre.watermark import RemoverBusy, RemoverError, WatermarkRemover
from tests.remover.clips import MadeClip
from tests.remover.conftest import worker_pids
from tests.support.processes import wait_until


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _started(progress: list[float]) -> None:
    """Until the worker reported it is into the job."""
    for _ in range(600):
        if progress:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the job never reported progress")


async def test_a_full_queue_answers_busy(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover(workers=1, queue=1)
    first = asyncio.create_task(remover.remove_watermark(small_clip.marked, tmp_path / "a.mp4"))
    second = asyncio.create_task(remover.remove_watermark(small_clip.marked, tmp_path / "b.mp4"))
    await asyncio.sleep(0)
    assert remover.running + remover.queued == 2

    with pytest.raises(RemoverBusy) as busy:
        await remover.remove_watermark(small_clip.marked, tmp_path / "c.mp4")
    error = busy.value.api_error()
    assert error.status == 503 and error.code == "remover_busy" and error.headers["Retry-After"]

    await asyncio.gather(first, second)
    assert (tmp_path / "a.mp4").is_file() and (tmp_path / "b.mp4").is_file()
    assert not (tmp_path / "c.mp4").exists()
    assert remover.running == remover.queued == 0
    # the warm worker served both jobs
    assert len(worker_pids()) == 1


async def test_cancelling_stops_the_job_and_leaves_nothing(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover(workers=1, queue=0)
    out = tmp_path / "out"
    out.mkdir()
    progress: list[float] = []
    job = asyncio.create_task(
        remover.remove_watermark(small_clip.marked, out / "x.mp4", on_progress=progress.append)
    )
    await _started(progress)
    pid = next(iter(worker_pids()))

    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job

    assert not _pid_alive(pid)
    assert _leftovers(out) == []
    assert remover.running == remover.queued == 0
    # the slot is free again: a new job runs on a new worker
    await remover.remove_watermark(small_clip.marked, out / "y.mp4")
    assert _leftovers(out) == ["y.mp4"]


async def test_a_worker_that_dies_fails_its_job_and_the_pool_recovers(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover(workers=1, queue=2)
    progress: list[float] = []
    doomed = asyncio.create_task(
        remover.remove_watermark(small_clip.marked, tmp_path / "doomed.mp4", on_progress=progress.append)
    )
    waiting = asyncio.create_task(remover.remove_watermark(small_clip.marked, tmp_path / "waiting.mp4"))
    await _started(progress)
    victim = next(iter(worker_pids()))
    os.kill(victim, signal.SIGKILL)  # as the OOM killer would

    with pytest.raises(RemoverError) as crashed:
        await doomed
    assert crashed.value.code == "remover_crashed" and "died" in crashed.value.message
    assert crashed.value.api_error().status == 500

    report = await waiting  # queued behind the crash: runs on a fresh worker
    assert report.mark_found
    assert victim not in worker_pids()
    assert _leftovers(tmp_path) == ["waiting.mp4"]


async def test_a_job_past_its_time_is_killed(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover(job_timeout=0.2)
    with pytest.raises(RemoverError) as late:
        await remover.remove_watermark(small_clip.marked, tmp_path / "late.mp4")
    assert late.value.code == "remover_timeout"
    assert late.value.api_error().status == 504
    assert _leftovers(tmp_path) == []
    wait_until(lambda: not worker_pids(), timeout=5)


async def test_close_stops_the_workers(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover(workers=2)
    await asyncio.gather(
        remover.remove_watermark(small_clip.marked, tmp_path / "a.mp4"),
        remover.remove_watermark(small_clip.marked, tmp_path / "b.mp4"),
    )
    assert len(worker_pids()) == 2
    await remover.close()
    assert worker_pids() == set()
    with pytest.raises(RemoverError) as closed:
        await remover.remove_watermark(small_clip.marked, tmp_path / "c.mp4")
    assert "shut down" in closed.value.message


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_worker_that_died_while_idle_is_replaced(
    small_clip: MadeClip, make_remover: Callable[..., WatermarkRemover], tmp_path: Path
) -> None:
    remover = make_remover(workers=1)
    await remover.remove_watermark(small_clip.marked, tmp_path / "a.mp4")
    (idle,) = worker_pids()
    os.kill(idle, signal.SIGKILL)

    # into a folder that does not exist yet, too
    await remover.remove_watermark(small_clip.marked, tmp_path / "sub" / "b.mp4")
    assert (tmp_path / "sub" / "b.mp4").is_file()
    assert idle not in worker_pids() and len(worker_pids()) == 1
