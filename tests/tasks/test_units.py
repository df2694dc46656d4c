"""Pieces of the engine on their own: the claim loop sleeps while nothing is due, signatures,
the capped history, the engine's own checks of a task."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest

from aitre.errors import ApiError
from aitre.security.ssrf import AddressPolicy
from aitre.store.models import now_ms
from aitre.tasks.changes import capped
from aitre.tasks.protocol import TaskSpec
from aitre.tasks.pump import Pump
from aitre.tasks.signing import sign, verify
from aitre.tasks.validate import check_spec


class _Counts:
    def __init__(self) -> None:
        self.claims = 0
        self.due: int | None = None
        self.blocked = False  # due, but not claimable (an earlier call of its task under way)
        self.handled: list[str] = []

    async def may_claim(self) -> bool:
        return True

    async def claim(self, limit: int) -> list[tuple[str, int]]:
        self.claims += 1
        if self.due is not None and self.due <= now_ms() and not self.blocked:
            self.due = None  # claimed (and run elsewhere)
        return []

    async def next_due(self) -> int | None:
        return self.due

    async def handle(self, unit: str) -> None:
        self.handled.append(unit)


async def test_the_claim_loop_sleeps_until_work_is_due() -> None:
    counts = _Counts()
    pump: Pump[str] = Pump("t", counts.may_claim, counts.claim, counts.handle, counts.next_due, 10, idle_s=30)
    pump.start()
    try:
        await asyncio.sleep(0.5)
        assert counts.claims == 1  # the first look, then nothing: nothing is due
        pump.due_at(now_ms() + 200)  # this process made work due in 0.2 s
        await asyncio.sleep(0.1)
        assert counts.claims == 1
        await asyncio.sleep(0.4)
        assert counts.claims == 2
        counts.due = now_ms() + 300  # the database says: next at +0.3 s
        pump.due_at(now_ms())
        await asyncio.sleep(0.15)
        assert counts.claims == 3
        await asyncio.sleep(0.5)
        assert counts.claims == 4
        pump.spawn("made here", 1)
        await asyncio.sleep(0.05)
        assert counts.handled == ["made here"] and pump.active == 0
        # Due but not claimable: looked at again a little later, not in a busy loop.
        counts.blocked, counts.due = True, now_ms()
        pump.due_at(now_ms())
        await asyncio.sleep(1.0)
        assert 5 <= counts.claims <= 10, counts.claims
    finally:
        await pump.stop()


def test_signatures_verify_and_bind_time_and_body() -> None:
    header = sign("whsec_k", 1700000000, b'{"a":1}')
    digest = hmac.new(b"whsec_k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={digest}"
    assert verify("whsec_k", header, b'{"a":1}')
    assert not verify("whsec_k", header, b'{"a":2}')
    assert not verify("whsec_other", header, b'{"a":1}')
    assert not verify("whsec_k", header.replace("1700000000", "1700000001", 1), b'{"a":1}')
    assert not verify("whsec_k", "garbage", b"")


def test_the_history_keeps_its_first_entry_and_the_latest() -> None:
    history: list[dict[str, int]] = []
    for i in range(10):
        history = capped(history, {"at": i}, 4)  # type: ignore[arg-type]
    assert [h["at"] for h in history] == [0, 7, 8, 9]


def _spec(**kw: object) -> TaskSpec:
    base: dict[str, object] = {
        "id": "1234567890123456",
        "kind": "mj",
        "action": "imagine",
        "model": "mj_imagine",
        "user_id": 1,
        "token_id": 1,
        "group": "default",
        "cost": 10,
    }
    return TaskSpec(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"id": ""}, "id"),
        ({"id": "x" * 60}, "id"),
        ({"id": "a b"}, "id"),
        ({"cost": -1}, "cost"),
        ({"client_state": "s" * 5000}, "state"),
        ({"notify_hook": "ftp://example.com/x"}, "notifyHook"),
        ({"notify_hook": "http://10.0.0.1/hook"}, "notifyHook"),
        ({"notify_hook": "http://[::1]:8080/hook"}, "notifyHook"),
        ({"notify_hook": "https://example.com/" + "x" * 3000}, "notifyHook"),
    ],
)
def test_the_engine_refuses_what_it_cannot_keep(changes: dict[str, object], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_spec(_spec(**changes), AddressPolicy())
    assert (caught.value.status, caught.value.param) == (400, param)


def test_a_public_or_allowed_hook_passes() -> None:
    check_spec(_spec(notify_hook="https://hooks.example.com/x"), AddressPolicy())
    check_spec(_spec(notify_hook="http://10.0.0.1/hook"), AddressPolicy(allowed_cidrs=["10.0.0.0/8"]))


async def test_with_a_backlog_a_freed_slot_claims_again_at_once() -> None:
    claims = 0
    pump: Pump[str]

    async def may_claim() -> bool:
        return True

    async def claim(limit: int) -> list[tuple[str, int]]:
        nonlocal claims
        claims += 1
        return [("poll", 1)] * limit  # always more due than fits

    async def handle(unit: str) -> None:
        await asyncio.sleep(0.02)
        pump.due_at(now_ms() + 10_000)  # as a worker does: this task's next poll, much later

    async def next_due() -> int | None:
        return now_ms()

    pump = Pump("t", may_claim, claim, handle, next_due, capacity=4, idle_s=5, batch=2)
    pump.start()
    try:
        await asyncio.sleep(1.0)
    finally:
        await pump.stop()
    # Units of 20 ms, 4 at a time: about 100 a second. Waiting for the later alarm (or the 5 s
    # idle look) instead made two rounds in the second.
    assert claims >= 20, claims


async def test_work_made_due_during_a_round_is_not_forgotten() -> None:
    """A unit spawned by the last round changes its task (next poll in 0.1 s) while the round still
    awaits the database's next due time, which predates that change: the pump must wake up for
    the change, not sleep until the idle look (5 s here)."""
    claims = 0
    pump: Pump[str]
    answering = asyncio.Event()

    async def may_claim() -> bool:
        return True

    async def claim(limit: int) -> list[tuple[str, int]]:
        nonlocal claims
        claims += 1
        return [("poll", 1)] if claims == 1 else []

    async def handle(unit: str) -> None:
        pump.due_at(now_ms() + 100)  # as a worker does after a poll: the task's next poll
        answering.set()

    async def next_due() -> int | None:
        await answering.wait()  # the database answers after the unit's change...
        return None  # ...with what it saw before it: nothing due

    pump = Pump("t", may_claim, claim, handle, next_due, capacity=4, idle_s=5)
    pump.start()
    try:
        await asyncio.sleep(0.6)
    finally:
        await pump.stop()
    assert claims >= 2, claims
