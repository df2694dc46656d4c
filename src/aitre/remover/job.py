"""One local removal: the video the client linked, fetched through the guarded fetcher (public
addresses only, at most `AITRE_REMOVER_MAX_BYTES`), cleaned by the watermark engine in its worker
processes (its limits: length, frame size, time), and kept in the media store.

Progress: the download is the first 5%, the engine's passes the rest. Files live in a folder of
their own under `<data_dir>/tmp/remover/`, removed when the job ends however it ends.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING

from aitre.chattask.inputs import read_own_media
from aitre.chattask.runs import Run, RunFailed, Runs
from aitre.media.fetch import FetchRefused
from aitre.media.kinds import sniff
from aitre.watermark import RemoverError, WatermarkRemover

if TYPE_CHECKING:
    from pathlib import Path

    from aitre.config import Settings
    from aitre.state import AppState
    from aitre.tasks.protocol import TaskView

_VIDEOS = ("mp4", "webm")
_DOWNLOADED = 5  # progress once the video is here


class LocalJobs:
    def __init__(self, runs: Runs) -> None:
        self.runs = runs
        self.active = 0
        self._remover: WatermarkRemover | None = None

    def remover(self, settings: Settings) -> WatermarkRemover:
        if self._remover is None:  # no worker starts before the first job
            self._remover = WatermarkRemover.from_settings(settings)
        return self._remover

    def has_room(self, settings: Settings) -> bool:
        """Jobs here are bounded like the engine's queue: its workers plus the jobs that may wait."""
        return self.active < settings.remover_workers + settings.remover_queue

    def start(self, state: AppState, task: TaskView) -> None:
        run = self.runs.start(state, task.id, lambda run: self._job(state, task, run))
        self.active += 1  # counted from now (a burst of submits sees the room shrink at once)
        assert run.job is not None
        run.job.add_done_callback(self._ended)  # however it ends, even cancelled before it began

    def _ended(self, _: object) -> None:
        self.active -= 1

    async def _job(self, state: AppState, task: TaskView, run: Run) -> None:
        settings = state.settings
        folder = settings.data_dir / "tmp" / "remover" / task.id
        try:
            await asyncio.to_thread(_fresh, folder)
            src, dst = folder / "input", folder / "clean.mp4"
            await self._download(state, str(task.request.get("url") or ""), src)
            self.runs.advance(state, run, _DOWNLOADED)

            def progress(fraction: float) -> None:
                self.runs.advance(state, run, _DOWNLOADED + int(fraction * (99 - _DOWNLOADED)))

            try:
                report = await self.remover(settings).remove_watermark(src, dst, on_progress=progress)
            except RemoverError as exc:
                raise RunFailed(exc.message, exc.code) from None
            stored = await state.media.save_file(dst, "mp4")
            self.runs.succeed(run, media=stored.name, frames=report.frames, mark_found=report.mark_found)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _download(self, state: AppState, url: str, dest: Path) -> None:
        limit = state.settings.remover_max_bytes
        try:
            data = await read_own_media(state, url, limit)  # a video made here: from the store
            if data is None:
                data = (await state.fetcher.fetch(url, max_bytes=limit)).data
        except FetchRefused as refused:
            raise RunFailed(f"the video cannot be fetched: {refused.message}", "invalid_url") from None
        if sniff(data) not in _VIDEOS:
            raise RunFailed(
                "the link is not a video file (mp4 or webm); a Sora share link needs an upstream that "
                "opens it (a `chat-video` channel serving sora_remover)",
                "not_a_video",
            )
        await asyncio.to_thread(dest.write_bytes, data)

    async def close(self) -> None:
        if self._remover is not None:
            await self._remover.close()
            self._remover = None


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
