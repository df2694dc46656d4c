"""Which task protocols serve which channel types, how each kind renders its tasks, and the routes
a kind adds. Built once per app (`build_task_registry`): the built-in kinds register here, and so
do the plugins named in `AITRE_TASK_PLUGINS` (protocols kept outside aitre).

Adding a task protocol = one module with a `TaskProtocol` class plus one `add_protocol` line in
`_builtin`; a kind's API module registers its renderer (and, if it brings its own routes rather
than listing them in `app.py`, its routes).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aitre.tasks.protocol import Renderer, TaskProtocol, TaskView

if TYPE_CHECKING:
    from starlette.requests import Request

    from aitre.channels.model import ChannelInfo
    from aitre.config import Settings
    from aitre.media.store import MediaStore

Handler = Callable[["Request"], Awaitable[Any]]


def plain_renderer(task: TaskView, media: MediaStore) -> dict[str, Any]:
    """The engine's own view of a task, for kinds that registered no renderer."""
    return {
        "id": task.id,
        "kind": task.kind,
        "action": task.action,
        "model": task.model,
        "status": task.status,
        "progress": task.progress,
        "result": task.result,
        "media": [{**m, "url": media.url(m["name"])} for m in task.media],
        "error": task.error or None,
        "error_code": task.error_code or None,
        "state": task.client_state,
        "created_at": task.created_at,
        "finished_at": task.finished_at,
    }


@dataclass
class TaskRegistry:
    protocols: dict[str, list[TaskProtocol]] = field(default_factory=dict)  # by channel type
    renderers: dict[str, Renderer] = field(default_factory=dict)  # by kind
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)  # (method, path)
    # What protocols run in the background of the process (readers of upstream streams, local
    # jobs), stopped with the engine.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def add_protocol(self, channel_type: str, protocol: TaskProtocol) -> None:
        self.protocols.setdefault(channel_type, []).append(protocol)

    def add_renderer(self, kind: str, renderer: Renderer) -> None:
        self.renderers[kind] = renderer

    def add_closer(self, close: Callable[[], Awaitable[None]]) -> None:
        self.closers.append(close)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def protocol_for(self, channel: ChannelInfo, task: TaskView) -> TaskProtocol | None:
        """The protocol that runs `task` on `channel`, if any."""
        for protocol in self.protocols.get(channel.type, ()):
            if protocol.kind == task.kind and protocol.serves(channel, task):
                return protocol
        return None

    def kinds(self) -> set[str]:
        return {p.kind for ps in self.protocols.values() for p in ps}

    def render(self, task: TaskView, media: MediaStore) -> dict[str, Any]:
        return self.renderers.get(task.kind, plain_renderer)(task, media)


def _builtin(registry: TaskRegistry) -> None:
    """The task protocols and kinds that ship with aitre (one line each)."""


def load_plugin(registry: TaskRegistry, spec: str) -> None:
    """`module:function`: the function is called with the registry."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"task plugin {spec!r}: expected `module:function`")
    register = getattr(importlib.import_module(module_name), attr)
    register(registry)


def build_task_registry(settings: Settings) -> TaskRegistry:
    registry = TaskRegistry()
    _builtin(registry)
    for spec in settings.task_plugins:
        load_plugin(registry, spec)
    return registry
