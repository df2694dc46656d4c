"""Which channel runs a task: an enabled channel that serves its model, allows its owner's group,
has a protocol of its kind (and the protocol agrees), preferring healthy ones, in the router's
priority and weight order (`channels.router`). A pinned task (an MJ action: its parent's
channel) runs on its channel only; a task already upstream is polled, looked up and cancelled on
the channel that has it, even if that channel was disabled meanwhile."""

from __future__ import annotations

from dataclasses import dataclass

from aitre.catalog import Catalog
from aitre.channels.health import ChannelHealth
from aitre.channels.model import ChannelInfo
from aitre.tasks.protocol import TaskProtocol, TaskView
from aitre.tasks.registry import TaskRegistry

Route = tuple[ChannelInfo, TaskProtocol]


@dataclass(frozen=True, slots=True)
class NoRoute:
    message: str
    final: bool  # no channel could ever take it (else: none can right now)


class Routes:
    def __init__(self, catalog: Catalog, health: ChannelHealth, registry: TaskRegistry) -> None:
        self._catalog = catalog
        self._health = health
        self._registry = registry

    def by_id(self) -> dict[int, ChannelInfo]:
        return {c.id: c for c in self._catalog.router.channels}

    def _serves(self, task: TaskView) -> list[ChannelInfo]:
        return [
            c
            for c in self._catalog.router.candidates(task.model)
            if c.allows_group(task.group) and self._registry.protocol_for(c, task) is not None
        ]

    def routable(self, task: TaskView) -> bool:
        """Whether any channel could ever run it (health and load aside)."""
        if task.channel_pinned:
            found = self.on_channel(task, submit=True)
            return not isinstance(found, NoRoute)
        return bool(self._serves(task))

    def choose(self, task: TaskView) -> Route | NoRoute:
        """The channel for a submit."""
        if task.channel_pinned:
            return self.on_channel(task, submit=True)
        serving = self._serves(task)
        if not serving:
            return NoRoute(f"no channel serves the model `{task.model}` for {task.kind} tasks", final=True)
        ids = {c.id for c in serving}
        tried = {h["channel_id"] for h in task.history if h.get("retry") and h.get("channel_id") in ids}
        exclude = tried if tried != ids else set()

        def usable(c: ChannelInfo) -> bool:
            cap = c.max_concurrency
            return c.id in ids and (cap <= 0 or self._health.inflight(c.id) < cap)

        channel = self._catalog.router.pick(
            task.model, exclude, usable, lambda c: self._health.available(c.id)
        )
        if channel is None:
            return NoRoute(f"every channel serving `{task.model}` is busy", final=False)
        protocol = self._registry.protocol_for(channel, task)
        assert protocol is not None  # `usable` kept only channels that have one
        return channel, protocol

    def on_channel(self, task: TaskView, submit: bool = False) -> Route | NoRoute:
        """The task's own channel (a new submit needs it enabled)."""
        channel = self.by_id().get(task.channel_id) if task.channel_id is not None else None
        if channel is None:
            return NoRoute(f"the task's channel ({task.channel_id}) no longer exists", final=True)
        if submit and not (channel.enabled and channel.allows_group(task.group)):
            return NoRoute(
                f"the task's channel ({channel.id}) is disabled or not open to its group", final=True
            )
        protocol = self._registry.protocol_for(channel, task)
        if protocol is None:
            return NoRoute(f"the task's channel ({channel.id}) no longer runs {task.kind} tasks", final=True)
        return channel, protocol
