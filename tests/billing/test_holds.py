"""Holds that outlive a process, through the bank classes against real SQLite, PostgreSQL and
Redis: a durable hold reserved by one process is ended by id by another after a restart, a hold
ends exactly once whoever tries (its owner late, two recoverers at once), a start-up leaves a
live neighbour's holds alone, and every bank caps a request at its reservation.

Each "process" here is what a gateway process holds (engine, instance, books, bank), built the
way `app.py` builds it; a restart is a new one on the same data folder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aitre.accounts import repo
from aitre.billing.bank import Bank, Hold, LocalBank
from aitre.billing.books import Books
from aitre.billing.instances import Instance, node_id
from aitre.billing.recovery import recover_node
from aitre.billing.redis_bank import RedisBalances, RedisBank
from aitre.billing.shared_bank import SharedBank
from aitre.billing.writer import Quarantine
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import upgrade_to_head
from tests.support.pg import fresh_database

REDIS_URL = os.environ.get("AITRE_TEST_REDIS", "redis://127.0.0.1:6379/0")
BANKS = ["local-sqlite", "shared-postgresql", "redis-postgresql"]


@dataclass
class Process:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    instance: Instance
    books: Books
    bank: Bank
    balances: RedisBalances | None


@asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind.endswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'aitre.db'}"
        return
    async with fresh_database() as url:
        yield url


async def start(kind: str, url: str, folder: Path, dead_seconds: float = 60.0) -> Process:
    """A gateway process's billing, as `app.py` starts it (recovery of the folder first)."""
    engine = make_engine(url)
    await upgrade_to_head(engine)
    sessions = make_sessionmaker(engine)
    node, journal, quarantine = node_id(folder), folder / "journal", Quarantine(folder / "quarantine")
    recovered = await recover_node(sessions, journal, node, f"{node}/test", quarantine)
    instance = Instance(sessions, node, journal, quarantine, 3600, dead_seconds)
    await instance.register()
    books = Books(sessions, journal, instance.journal, 3600, owner=lambda: instance.id, quarantine=quarantine)
    balances = None
    bank: Bank
    if kind.startswith("local"):
        bank = LocalBank(sessions, books)
    elif kind.startswith("shared"):
        bank = SharedBank(sessions, books)
    else:
        balances = RedisBalances(REDIS_URL, url)
        bank = RedisBank(sessions, books, balances)
        await bank.prepare(await instance.others_alive())
    bank.absorb(recovered)
    return Process(engine, sessions, instance, books, bank, balances)


async def stop(p: Process, clean: bool = True) -> None:
    """A clean shutdown (books written, open holds refunded), or a crash (nothing more written)."""
    if clean:
        assert await p.books.stop()
        p.bank.absorb(await p.instance.retire())
    else:
        p.books.close()
    if isinstance(p.bank, RedisBank):
        await p.bank.close()
    await p.engine.dispose()


async def one(url: str, sql: str, **params: object) -> object:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await engine.dispose()


async def new_user(url: str, quota: int) -> int:
    engine = make_engine(url)
    await upgrade_to_head(engine)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            user = await repo.create_user(session, f"u{os.urandom(4).hex()}", quota=quota)
            return user.id
    finally:
        await engine.dispose()


async def balance_and_ledger(url: str, user_id: int) -> tuple[int, int]:
    quota = await one(url, "SELECT quota FROM users WHERE id = :u", u=user_id)
    total = await one(
        url, "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger WHERE user_id = :u", u=user_id
    )
    return int(str(quota)), int(str(total))


async def redis_balance(p: Process, user_id: int, expected: int) -> int:
    """The user's balance in Redis once what the bank owes it has arrived."""
    assert p.balances is not None
    value = 0
    for _ in range(100):
        value = int(await p.balances.redis.get(p.balances.user_key(user_id)) or 0)
        if value == expected:
            break
        await asyncio.sleep(0.05)
    return value


@pytest.mark.parametrize("kind", BANKS)
async def test_a_durable_hold_is_ended_by_id_in_another_process_after_a_restart(
    kind: str, tmp_path: Path
) -> None:
    async with database(kind, tmp_path) as url:
        user = await new_user(url, 1000)
        a = await start(kind, url, tmp_path / "a")
        await a.bank.reserve_durable(Hold("task_abc", user, None, 300))
        # Committed before `reserve_durable` returned, owned by no instance.
        assert await balance_and_ledger(url, user) == (700, 700)
        assert (
            await one(url, "SELECT owner FROM ledger WHERE hold_id = 'task_abc' AND kind = 'reserve'") is None
        )
        await stop(a)  # a clean shutdown refunds its own open holds: not a durable one
        a = await start(kind, url, tmp_path / "a")  # a restart recovers the folder: not a durable one
        b = await start(kind, url, tmp_path / "b")
        assert await balance_and_ledger(url, user) == (700, 700)

        assert await b.bank.settle_by_id("task_abc", 100) == 100
        # Exactly once, whoever tries next.
        assert await a.bank.settle_by_id("task_abc", 50) == 0
        assert not await a.bank.refund_by_id("task_abc")
        assert await balance_and_ledger(url, user) == (900, 900)
        assert await a.bank.balance(user) == await b.bank.balance(user) == 900
        if b.balances is not None:
            assert await redis_balance(b, user, 900) == 900
        # A dearer cost is capped at the reservation; an unknown hold changes nothing.
        await a.bank.reserve_durable(Hold("task_def", user, None, 200))
        assert await a.bank.settle_by_id("task_def", 999) == 200
        assert await b.bank.settle_by_id("task_nothing", 10) == 0
        assert await balance_and_ledger(url, user) == (700, 700)
        note = await one(url, "SELECT note FROM ledger WHERE hold_id = 'task_def' AND kind = 'settle'")
        assert note == "cost 999 capped at the reserved 200"
        await stop(a)
        await stop(b)


@pytest.mark.parametrize("kind", BANKS)
async def test_a_durable_hold_refunded_by_id(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url:
        user = await new_user(url, 1000)
        a = await start(kind, url, tmp_path / "a")
        await a.bank.reserve_durable(Hold("task_r", user, None, 400))
        await stop(a, clean=False)  # killed: the durable hold survives recovery
        b = await start(kind, url, tmp_path / "a")
        assert await balance_and_ledger(url, user) == (600, 600)
        assert await b.bank.refund_by_id("task_r", "task failed")
        assert not await b.bank.refund_by_id("task_r")
        assert await balance_and_ledger(url, user) == (1000, 1000)
        if b.balances is not None:
            assert await redis_balance(b, user, 1000) == 1000
        await stop(b)


@pytest.mark.parametrize("kind", BANKS)
async def test_the_refund_wins_over_the_settlement_of_an_instance_declared_gone(
    kind: str, tmp_path: Path
) -> None:
    async with database(kind, tmp_path) as url:
        user = await new_user(url, 1000)
        x = await start(kind, url, tmp_path / "x", dead_seconds=0.3)
        y = await start(kind, url, tmp_path / "y", dead_seconds=0.3)
        hold = Hold("req_late", user, None, 300)
        await x.bank.reserve(hold)
        await x.books.flush()  # the reserve row is in the database, owned by x
        old_id = x.instance.id
        await asyncio.sleep(0.5)  # x's heartbeats do not reach the database
        await y.instance.beat()
        changes: list[dict[str, object]] = []
        await y.instance.sweep(changes)
        y.bank.absorb(changes)
        assert await balance_and_ledger(url, user) == (1000, 1000)  # refunded

        assert x.bank.settle(hold, 100) == 100  # x does not know yet
        await x.books.flush()
        assert await balance_and_ledger(url, user) == (1000, 1000)  # the settlement was dropped
        kinds = await one(url, "SELECT COUNT(*) FROM ledger WHERE hold_id = 'req_late' AND kind <> 'reserve'")
        assert kinds == 1
        assert await x.bank.balance(user) == 1000
        if x.balances is not None:
            assert await redis_balance(x, user, 1000) == 1000
        # x notices at its next heartbeat and goes on under a new id.
        await x.instance.beat()
        assert x.instance.id != old_id
        assert await one(url, "SELECT recovered_by FROM instances WHERE id = :i", i=old_id) == y.instance.id
        hold2 = Hold("req_after", user, None, 300)
        await x.bank.reserve(hold2)
        await x.books.flush()
        assert await one(url, "SELECT owner FROM ledger WHERE hold_id = 'req_after'") == x.instance.id
        x.bank.settle(hold2, 100)
        await stop(x)
        await stop(y)
        assert await balance_and_ledger(url, user) == (900, 900)


@pytest.mark.parametrize("kind", ["local-sqlite", "shared-postgresql"])
async def test_two_recoverers_at_the_same_moment_refund_each_hold_once(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url:
        user = await new_user(url, 10_000)
        x = await start(kind, url, tmp_path / "x", dead_seconds=0.2)
        for i in range(20):
            await x.bank.reserve(Hold(f"req_{i}", user, None, 100))
        await x.books.flush()
        await stop(x, clean=False)
        y = await start(kind, url, tmp_path / "y", dead_seconds=0.2)
        z = await start(kind, url, tmp_path / "z", dead_seconds=0.2)
        await asyncio.sleep(0.4)
        await asyncio.gather(y.instance.beat(), z.instance.beat())
        found: tuple[list[dict[str, object]], list[dict[str, object]]] = ([], [])
        await asyncio.gather(y.instance.sweep(found[0]), z.instance.sweep(found[1]))
        assert len(found[0]) + len(found[1]) == 20
        refunds = await one(url, "SELECT COUNT(*) FROM ledger WHERE kind = 'refund'")
        assert refunds == 20
        assert await balance_and_ledger(url, user) == (10_000, 10_000)
        await stop(y)
        await stop(z)


@pytest.mark.parametrize("kind", BANKS)
async def test_a_start_leaves_a_live_neighbours_holds_alone(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url:
        user = await new_user(url, 1000)
        a = await start(kind, url, tmp_path / "a")
        hold = Hold("req_inflight", user, None, 300)
        await a.bank.reserve(hold)
        await a.books.flush()
        b = await start(kind, url, tmp_path / "b")  # another instance starts, and recovers its folder
        assert await balance_and_ledger(url, user) == (700, 700)
        assert a.bank.settle(hold, 100) == 100
        await stop(a)
        await stop(b)
        assert await balance_and_ledger(url, user) == (900, 900)


@pytest.mark.parametrize("kind", BANKS)
async def test_a_request_never_costs_more_than_its_reservation(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url:
        user = await new_user(url, 1000)
        a = await start(kind, url, tmp_path / "a")
        hold = Hold("req_dear", user, None, 300)
        await a.bank.reserve(hold)
        assert a.bank.settle(hold, 500) == 300
        await stop(a)
        assert await balance_and_ledger(url, user) == (700, 700)
        note = await one(url, "SELECT note FROM ledger WHERE hold_id = 'req_dear' AND kind <> 'reserve'")
        assert note == "cost 500 capped at the reserved 300"
