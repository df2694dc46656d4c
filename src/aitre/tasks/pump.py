"""A claim loop: sleep until work is due (or a wake-up), claim what fits, run it, repeat.

It does not wake up when nothing is due: it sleeps until the earliest due time the database
knows, or until this process makes work due sooner (`wake`); `idle_s` bounds the sleep, for
work other processes make due (tasks they create, leases that ran out). With a backlog (the last
claim was cut short by the capacity) it claims again as soon as a slot frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from aitre.store.models import now_ms

log = logging.getLogger(__name__)
Unit = TypeVar("Unit")
# Work that is due but could not be claimed (a notifyHook call waiting for an earlier one of its
# task, rows another instance is claiming at this moment): looked at again this much later,
# rather than at once in a loop.
_RELOOK_MS = 250


class Pump(Generic[Unit]):
    def __init__(
        self,
        name: str,
        may_claim: Callable[[], Awaitable[bool]],
        claim: Callable[[int], Awaitable[Sequence[tuple[Unit, int]]]],
        handle: Callable[[Unit], Awaitable[None]],
        next_due: Callable[[], Awaitable[int | None]],
        capacity: int,
        idle_s: float,
        batch: int | None = None,
    ) -> None:
        """`claim(n)` claims up to n items and returns them as units of work with their item
        counts; `handle` runs one unit; `next_due` says when the earliest item is due (ms)."""
        self.name = name
        self._may_claim = may_claim
        self._claim = claim
        self._handle = handle
        self._next_due = next_due
        self._capacity = capacity
        self._batch = batch or capacity  # claimed in one round at most
        self._idle_ms = int(idle_s * 1000)
        self.wake = asyncio.Event()
        self.active = 0
        self._due: int | None = 0
        self._backlog = False
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._stopped = False
        self.rounds = 0  # claim rounds made (a benchmark reads it)

    def due_at(self, at_ms: int) -> None:
        """This process made an item due at `at_ms`: wake up by then."""
        if self._due is None or at_ms < self._due:
            self._due = at_ms
            self.wake.set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop claiming and cancel the work in flight (its leases run out; others take over)."""
        self._stopped = True
        tasks = [t for t in (self._loop, *self._running) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._loop = None

    def spawn(self, unit: Unit, count: int) -> None:
        """Run a unit this process claimed by other means (a task it just created). After `stop`
        it is left to its lease: another process (or the next start) takes it over."""
        if self._stopped:
            return
        self.active += count
        task = asyncio.get_running_loop().create_task(self._run_unit(unit, count))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run_unit(self, unit: Unit, count: int) -> None:
        try:
            await self._handle(unit)
        except Exception:
            log.exception("%s: a unit of work failed; its lease runs out and it is tried again", self.name)
        finally:
            self.active -= count
            if self._backlog:
                self.due_at(now_ms())  # a slot is free and more is due: now, whatever alarm was set

    async def _sleep(self) -> None:
        """Until the next due time (at most `idle_s`), or a wake-up that makes work due now (one
        for a later time only moves the alarm)."""
        while True:
            now = now_ms()
            until = now + self._idle_ms if self._due is None else min(self._due, now + self._idle_ms)
            if until <= now:
                return
            if not self.wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout((until - now) / 1000):
                        await self.wake.wait()
            if not self.wake.is_set():
                return  # the alarm
            self.wake.clear()
            if self._due is None or self._due <= now_ms():
                return

    async def _run(self) -> None:
        while True:
            await self._sleep()
            try:
                await self._round()
            except Exception:
                log.exception("%s: claiming failed; trying again shortly", self.name)
                self._due = now_ms() + 1000

    async def _round(self) -> None:
        free = self._capacity - self.active
        if free <= 0:
            self._backlog = True
            self._due = None
            return
        # From here a `due_at` made while the round awaits is kept and merged below: the database's
        # answer may predate it (a unit spawned meanwhile changed a task), and overwriting it lost
        # the wake-up until the idle check (progress seen seconds late).
        self._due = None
        if not await self._may_claim():
            return
        self.rounds += 1
        limit = min(free, self._batch)
        units = await self._claim(limit)
        claimed = 0
        for unit, count in units:
            claimed += count
            self.spawn(unit, count)
        self._backlog = claimed >= limit
        if self._backlog:
            self._due = now_ms()
            return
        due = await self._next_due()
        if due is not None and due <= now_ms() and not claimed:
            due = now_ms() + _RELOOK_MS  # due, yet nothing could be claimed: not in a tight loop
        if self._due is not None and (due is None or self._due < due):
            due = self._due  # made due by this process while the round ran
        self._due = due
