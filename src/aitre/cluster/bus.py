"""The instances' message bus: Redis pub/sub, one subscriber connection per process.

What travels here are hints that let other instances act at once instead of at their next
poll: "the catalog changed" (a key revoked, a channel disabled), "this channel's breaker
tripped". Nothing depends on a message arriving: every receiver also polls (the catalog version
every `AITRE_CACHE_REFRESH_SECONDS`) or re-reads the shared state when it (re)connects, so a
message lost while Redis was away only delays what it announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]

_MAX_BACKOFF = 5.0


class Bus:
    def __init__(self, url: str, namespace: str, max_connections: int = 4) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max(2, max_connections),
            timeout=5,
            health_check_interval=10,
            socket_connect_timeout=2,
        )
        self.redis: Redis = Redis.from_pool(pool)
        self.ns = namespace
        # Who sent a message, so that a process skips its own: unique per process and start.
        self.sender = secrets.token_hex(6)
        self._handlers: dict[str, Handler] = {}
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def channel(self, topic: str) -> str:
        return f"{self.ns}:bus:{topic}"

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call `handler` with each message another process publishes on `topic` (before `start`)."""
        self._handlers[self.channel(topic)] = handler

    def on_connect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call `callback` each time the subscription is (re)made: messages may have been missed."""
        self._on_connect.append(callback)

    async def publish(self, topic: str, payload: dict[str, Any]) -> bool:
        """Send `payload` to the other processes; False (logged) when Redis did not take it."""
        try:
            await self.redis.publish(self.channel(topic), orjson.dumps({**payload, "from": self.sender}))
        except (RedisError, OSError) as exc:
            log.warning("publishing %s to the other instances failed (they will poll): %s", topic, exc)
            return False
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-bus")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.redis.aclose()

    async def _run(self) -> None:
        delay, down = 0.1, False
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*self._handlers)
                if down:
                    log.warning("Redis answers again: instance messages resume")
                down, delay = False, 0.1
                for callback in self._on_connect:
                    await _guarded(callback(), "catching up after connecting to Redis failed")
                self.connected.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is not None:
                        await self._dispatch(message)
            except (RedisError, OSError) as exc:
                self.connected.clear()
                if not down:
                    log.warning("lost the Redis subscription (polling meanwhile): %s", exc)
                down = True
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(_MAX_BACKOFF, delay * 2)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        handler = self._handlers.get(name)
        if handler is None:
            return
        try:
            payload = orjson.loads(message["data"])
        except (orjson.JSONDecodeError, TypeError):
            log.warning("ignored a malformed message on %s", name)
            return
        if not isinstance(payload, dict) or payload.get("from") == self.sender:
            return
        await _guarded(handler(payload), f"handling a message on {name} failed")


async def _guarded(step: Awaitable[Any], failed: str) -> None:
    try:
        await step
    except Exception:
        log.exception(failed)
