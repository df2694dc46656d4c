"""The `local-remover` channel type: `sora_remover` tasks run here, on the local watermark engine.

A channel of this type (no base URL, no key; `aitre channel add local-remover --type
local-remover --models sora_remover`) is routed like any other: an operator may keep it for some
groups, give it a priority against `chat-video` upstreams that also serve `sora_remover`, or
disable it. The job (`job.py`) runs in the background of the process that submitted it
(`chattask.runs`): it downloads the video through the guarded fetcher, removes the mark in the
engine's worker processes and keeps the result in the media store.

The work is aitre's own: nothing upstream could run twice. So an interrupted submit is simply
submitted again (`lookup` says "not there"), and a job lost with its process (a crash, a
restart) is started again by whoever polls the task next; a job is refused a start when this
process already has as many as its remover's workers and queue take (the engine tries again
later, or another channel).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from aitre.adapters.base import Retryable
from aitre.chattask.models import REMOVER_KIND
from aitre.chattask.runs import RUNNER, Runs
from aitre.errors import ApiError
from aitre.remover.job import LocalJobs
from aitre.tasks.protocol import RUNNING, Polled, Submitted, TaskContext

if TYPE_CHECKING:
    from aitre.adapters.base import Forwarder
    from aitre.adapters.capability import Capability
    from aitre.adapters.images import ImageMaker
    from aitre.channels.model import ChannelInfo
    from aitre.media.store import StoredMedia
    from aitre.state import AppState
    from aitre.tasks.protocol import TaskView
    from aitre.tasks.registry import TaskRegistry

CHANNEL_TYPE = "local-remover"


class LocalRemoverProtocol:
    """`aitre.tasks.protocol.TaskProtocol` for `local-remover` channels."""

    kind = REMOVER_KIND
    poll_batch = 50

    def __init__(self) -> None:
        self.runs = Runs()
        self.jobs = LocalJobs(self.runs)

    def serves(self, channel: ChannelInfo, task: TaskView) -> bool:
        return channel.serves(task.model)

    def _start(self, ctx: TaskContext, task: TaskView) -> None:
        if not self.jobs.has_room(ctx.settings):
            raise Retryable(
                ApiError(503, "the local watermark remover is busy", type="server_error", code="remover_busy")
            )
        self.jobs.start(ctx.state, task)

    async def submit(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted:
        self._start(ctx, task)
        return Submitted(f"local:{task.id}", result={RUNNER: self.runs.me(ctx.state)})

    async def lookup(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> Submitted | None:
        return None  # nothing left this process: submitting again starts the one job there is

    async def poll(self, ctx: TaskContext, channel: ChannelInfo, tasks: list[TaskView]) -> list[Polled]:
        answers: list[Polled] = []
        for task in tasks:
            news = self.runs.take(task)
            if news is not None:
                answers.append(news)
            elif await self.runs.runner_gone(ctx.state, task) and self.jobs.has_room(ctx.settings):
                self.jobs.start(ctx.state, task)  # its process is gone: the job starts again here
                answers.append(Polled(task.id, RUNNING, 0, {RUNNER: self.runs.me(ctx.state)}))
        return answers

    async def fetch_result(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> list[StoredMedia]:
        from aitre.media.store import StoredMedia

        name = task.result.get("media")
        info = await ctx.media.stat(str(name)) if name else None
        self.runs.forget(task.id)
        if info is None:
            raise RuntimeError("the cleaned video is not in the media store")
        return [StoredMedia(info.name, ctx.media.url(info.name), info.size, info.content_type)]

    async def cancel(self, ctx: TaskContext, channel: ChannelInfo, task: TaskView) -> None:
        await self.runs.cancel(task.id)  # kills its worker's job, removes the partial files

    async def close(self) -> None:
        await self.runs.close()
        await self.jobs.close()


class LocalRemoverAdapter:
    """The relay's view of the channel type: nothing to forward, nothing upstream to probe."""

    def forwarder(self, capability: Capability, channel: ChannelInfo, model: str) -> Forwarder | None:
        return None

    def image_maker(self, capability: Capability, channel: ChannelInfo, model: str) -> ImageMaker | None:
        return None

    async def probe(self, state: AppState, channel: ChannelInfo) -> bool:
        return True

    async def balance(self, state: AppState, channel: ChannelInfo) -> Decimal | None:
        return None


def register(registry: TaskRegistry) -> None:
    protocol = LocalRemoverProtocol()
    registry.add_protocol(CHANNEL_TYPE, protocol)
    registry.add_closer(protocol.close)
