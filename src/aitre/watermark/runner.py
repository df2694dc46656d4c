"""The remover as the gateway sees it: `await remover.remove_watermark(src, dst)` runs the job
in a pool of worker processes, never on the event loop, with a bounded queue.

Why worker processes of our own rather than `concurrent.futures.ProcessPoolExecutor`: a worker
that dies (a decoder crash, the OOM killer) breaks an executor and fails every job in it, a
running job cannot be cancelled, and progress would need a manager process. Here each worker is
a child (`python -m aitre.watermark.worker`, so nothing is forked from the running server) that
talks JSON lines over its pipes: a crash fails only its own job and the next job starts a fresh
worker; cancelling or timing out a job kills its worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aitre.watermark.errors import RemoverBusy, RemoverError
from aitre.watermark.job import EngineOptions, Limits, Report

if TYPE_CHECKING:
    from aitre.config import Settings

OnProgress = Callable[[float], Awaitable[None] | None]
_START_TIMEOUT = 60.0  # a new worker imports numpy, OpenCV and PyAV: seconds on a busy machine
_LINE_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RemoverConfig:
    workers: int = 1
    queue: int = 4  # jobs that may wait for a worker; one more is refused as busy
    job_timeout: float = 600.0
    options: EngineOptions = field(default_factory=EngineOptions)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_settings(cls, s: Settings) -> RemoverConfig:
        return cls(
            workers=s.remover_workers,
            queue=s.remover_queue,
            job_timeout=s.remover_job_timeout_seconds,
            options=EngineOptions(
                mark_path=str(s.remover_mark_path) if s.remover_mark_path else None,
                reference_short_side=s.remover_mark_reference_size,
                threshold=s.remover_match_threshold,
                method=s.remover_method,
                when_no_mark=s.remover_when_no_mark,
                crf=s.remover_crf,
                preset=s.remover_preset,
            ),
            limits=Limits(
                max_bytes=s.remover_max_bytes,
                max_seconds=s.remover_max_seconds,
                max_pixels=s.remover_max_pixels,
            ),
        )


class _NotStarted(RemoverError):
    """The worker was gone before it took the job (it died while idle): the job can go elsewhere."""

    def __init__(self) -> None:
        super().__init__("remover_crashed", "the watermark-removal worker died before the job started")


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, python: str) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "aitre.watermark.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
            # a terminal's Ctrl-C is for the gateway, which then closes the workers' stdin
            start_new_session=True,
        )
        worker = cls(proc)
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                hello = await worker._receive()
            if not hello.get("ready"):
                raise RemoverError("remover_crashed", "unexpected first message")
        except (TimeoutError, RemoverError):
            await asyncio.shield(worker.kill())
            raise RemoverError("remover_crashed", "a watermark-removal worker did not start") from None
        except BaseException:
            await asyncio.shield(worker.kill())
            raise
        return worker

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def run(self, job: dict[str, Any], on_progress: OnProgress | None) -> Report:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            await self.proc.stdin.drain()
            if not (await self._receive()).get("started"):
                raise RemoverError("remover_crashed", "the worker did not take the job")
        except (BrokenPipeError, ConnectionResetError, RemoverError):
            raise _NotStarted() from None
        while True:
            message = await self._receive()
            if "progress" in message:
                if on_progress is not None:
                    result = on_progress(float(message["progress"]))
                    if inspect.isawaitable(result):
                        await result
            elif "report" in message:
                return Report.from_json(message["report"])
            elif "error" in message:
                raise RemoverError(str(message["error"]["code"]), str(message["error"]["message"]))

    async def _receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            code = await self.proc.wait()
            raise RemoverError("remover_crashed", f"the watermark-removal worker died (exit status {code})")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            await self.kill()
            raise RemoverError("remover_crashed", "the watermark-removal worker answered garbage")
        return message

    async def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()

    async def stop(self) -> None:
        """Close its stdin (it exits by itself), then kill it if it lingers."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            await self.kill()


class WatermarkRemover:
    """Owned by the app state; workers start on first use and are kept warm between jobs."""

    def __init__(self, config: RemoverConfig, python: str = sys.executable) -> None:
        self.config = config
        self.python = python
        self._slots = asyncio.Semaphore(config.workers)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._admitted = 0
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> WatermarkRemover:
        return cls(RemoverConfig.from_settings(settings))

    @property
    def running(self) -> int:
        return len(self._busy)

    @property
    def queued(self) -> int:
        return self._admitted - len(self._busy)

    async def remove_watermark(
        self,
        src: Path,
        dst: Path,
        *,
        limits: Limits | None = None,
        on_progress: OnProgress | None = None,
    ) -> Report:
        """Write `src` without its watermark to `dst` (an mp4), or raise RemoverError.

        `on_progress` gets the fraction done (0..1, rising) a few times a second; it may be a
        coroutine function. Cancelling the awaiting task stops the job (its worker is killed)
        and leaves no `dst`. `dst` appears whole or not at all.
        """
        if self._closed:
            raise RemoverError("remover_failed", "the watermark remover is shut down")
        if self._admitted >= self.config.workers + self.config.queue:
            raise RemoverBusy()
        self._admitted += 1
        try:
            async with self._slots:
                return await self._run(src, dst, limits or self.config.limits, on_progress)
        finally:
            self._admitted -= 1

    async def _run(self, src: Path, dst: Path, limits: Limits, on_progress: OnProgress | None) -> Report:
        await asyncio.to_thread(dst.parent.mkdir, parents=True, exist_ok=True)
        while self._idle and not self._idle[-1].alive:
            await self._idle.pop().kill()  # died while idle: reap it
        reused = bool(self._idle)
        worker = self._idle.pop() if reused else await _Worker.start(self.python)
        self._busy.add(worker)
        part = dst.with_name(f".{dst.name}.{secrets.token_hex(6)}.part")
        job = {
            "src": str(src),
            "dst": str(part),
            "options": dataclasses.asdict(self.config.options),
            "limits": dataclasses.asdict(limits),
        }
        keep, finished = False, False
        try:
            try:
                async with asyncio.timeout(self.config.job_timeout):
                    try:
                        report = await worker.run(job, on_progress)
                    except _NotStarted:
                        if not reused:
                            raise
                        # a warm worker that died unnoticed while idle: once more on a new one
                        self._busy.discard(worker)
                        await asyncio.shield(worker.kill())
                        worker = await _Worker.start(self.python)
                        self._busy.add(worker)
                        report = await worker.run(job, on_progress)
            except TimeoutError:
                raise RemoverError(
                    "remover_timeout",
                    f"removing the watermark took longer than {self.config.job_timeout:g} s",
                ) from None
            await asyncio.to_thread(os.replace, part, dst)
            keep = finished = True
            return report
        except RemoverError as exc:
            # a worker that answered with an error is fine: only the job failed
            keep = exc.code not in ("remover_timeout", "remover_crashed")
            if self._closed:
                raise RemoverError("remover_failed", "the watermark remover was shut down") from exc
            raise
        finally:
            self._busy.discard(worker)
            if keep and worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                # cancelled, timed out or dead: it must be gone before its output is removed
                await asyncio.shield(worker.kill())
            if not finished:
                await asyncio.to_thread(part.unlink, missing_ok=True)

    async def close(self) -> None:
        self._closed = True
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
