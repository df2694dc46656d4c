"""Gateway instances: every serving process (each worker) registers in the `instances` table and
heartbeats. The open holds it reserves are stamped with its id; when it is gone (no heartbeat
for `AITRE_INSTANCE_DEAD_SECONDS`), the first live instance to claim it refunds them. Nobody
refunds the holds of a live neighbour.

Times are the database's clock (`recovery.db_now`), so instances on machines whose clocks
disagree still agree on who is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.journal import remove, remove_folder, segments
from aitre.billing.ledger_rows import refund_open
from aitre.billing.recovery import db_now, replay, undo
from aitre.billing.writer import Quarantine, Written
from aitre.periodic import cancel, every

log = logging.getLogger(__name__)

_KEEP_MS = 7 * 24 * 3600 * 1000  # how long the rows of ended instances are kept (for the record)


def node_id(data_dir: Path) -> str:
    """The id of a data folder, made once and kept in it: processes serving from the same folder
    share its journals, so a restart there can recover its earlier incarnations at once."""
    path = data_dir / "node-id"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    draft = data_dir / f".node-id.{os.getpid()}"
    draft.write_text(secrets.token_hex(8) + "\n")
    try:
        os.link(draft, path)  # whole or not at all; if another process of the folder won, its id
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


def journal_name(instance_id: str) -> str:
    """The journal folder of an instance: a process keeps its first id's folder when it
    registers again under a new id (`<first>.<n>`)."""
    return instance_id.split(".", 1)[0]


def _process_gone(hostname: str, pid: int) -> bool:
    """Whether an instance's process is certainly not running: only knowable on its machine."""
    if hostname != socket.gethostname():
        return False
    if pid == os.getpid():
        return True  # a reused pid: ours
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    return False


class Instance:
    """This process as a gateway instance."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        node: str,
        journal_root: Path,
        quarantine: Quarantine,
        heartbeat_seconds: float = 5.0,
        dead_seconds: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self.node = node
        self._journal_root = journal_root
        self._quarantine = quarantine
        self._heartbeat = heartbeat_seconds
        self._dead_ms = int(dead_seconds * 1000)
        self.id = ""
        self.journal = secrets.token_hex(8)
        self._incarnation = 0
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._absorb: Callable[[list[dict[str, Any]]], None] | None = None
        # Told when a sweep has recovered instances (their ids): the task engine frees their
        # leases at once rather than waiting for them to run out.
        self.on_gone: list[Callable[[list[str]], Awaitable[None]]] = []

    async def register(self) -> None:
        """A row for this process; reserve rows written from now on carry its id."""
        new_id = self.journal if self._incarnation == 0 else f"{self.journal}.{self._incarnation}"
        async with self._sessions() as session, session.begin():
            now = db_now(session)
            await session.execute(
                text(
                    "INSERT INTO instances (id, node, hostname, pid, started_at, heartbeat_at) "
                    f"VALUES (:id, :node, :host, :pid, {now}, {now})"
                ),
                {"id": new_id, "node": self.node, "host": socket.gethostname()[:255], "pid": os.getpid()},
            )
            if not self.id:
                # Instances long stopped or recovered, holding nothing: one row per process start
                # would otherwise pile up.
                await session.execute(
                    text(
                        f"DELETE FROM instances WHERE COALESCE(stopped_at, recovered_at) < {now} - :keep "
                        "AND NOT EXISTS (SELECT 1 FROM ledger WHERE kind = 'reserve' AND ended_at IS NULL "
                        "AND owner = instances.id)"
                    ),
                    {"keep": _KEEP_MS},
                )
            else:
                # Holds still open under the old id were written after the recovery that declared
                # us gone had refunded the others: they are ours to end.
                await session.execute(
                    text(
                        "UPDATE ledger SET owner = :new WHERE kind = 'reserve' AND ended_at IS NULL "
                        "AND owner = :old"
                    ),
                    {"new": new_id, "old": self.id},
                )
        self.id = new_id

    async def others_alive(self) -> bool:
        """Whether another instance on this database is running (a heartbeat within the dead
        time, neither stopped nor recovered)."""
        async with self._sessions() as session:
            now = db_now(session)
            found = await session.scalar(
                text(
                    "SELECT COUNT(*) FROM instances WHERE id <> :me AND stopped_at IS NULL "
                    f"AND recovered_at IS NULL AND heartbeat_at >= {now} - :dead"
                ),
                {"me": self.id, "dead": self._dead_ms},
            )
        return bool(found)

    async def beat(self) -> None:
        """Heartbeat. An instance that finds itself declared gone (its heartbeats did not reach
        the database for the dead time) carries on under a fresh id: its endings of holds that
        were refunded meanwhile are dropped (the refund wins)."""
        async with self._sessions() as session, session.begin():
            beat = await session.execute(
                text(
                    f"UPDATE instances SET heartbeat_at = {db_now(session)} "
                    "WHERE id = :me AND recovered_by IS NULL AND stopped_at IS NULL"
                ),
                {"me": self.id},
            )
        if beat.rowcount == 1:  # type: ignore[attr-defined]
            return
        old = self.id
        self._incarnation += 1
        await self.register()
        log.warning(
            "this instance (%s) was declared gone (no heartbeat reached the database for %.0f s) and its "
            "open holds were refunded; it goes on as %s",
            old,
            self._dead_ms / 1000,
            self.id,
        )

    async def sweep(self, changes: list[dict[str, Any]]) -> list[str]:
        """Recover instances that are gone: claim each (one claimer wins), replay its journal
        when it ran from this data folder, refund its open holds. Also refund holds still open
        under instances recovered more than the dead time ago (written late by an instance
        that had not yet noticed it was declared gone, or left by a recoverer that died).
        Appends the balance changes made to `changes` as they commit, for the live balances.
        Returns the ids of the instances this sweep recovered."""
        async with self._sessions() as session:
            gone = (
                await session.execute(
                    text(
                        "SELECT id, node, hostname, pid FROM instances WHERE id <> :me "
                        "AND stopped_at IS NULL AND recovered_by IS NULL "
                        f"AND heartbeat_at < {db_now(session)} - :dead"
                    ),
                    {"me": self.id, "dead": self._dead_ms},
                )
            ).all()
        recovered: list[str] = []
        for dead_id, node, hostname, pid in gone:
            if not await self._claim(dead_id):
                continue
            recovered.append(dead_id)
            log.warning(
                "instance %s (pid %s on %s) is gone: refunding its open holds", dead_id, pid, hostname
            )
            folder = self._journal_root / journal_name(dead_id)
            if node == self.node and folder.is_dir() and _process_gone(hostname, int(pid)):
                await self._replay(folder, dead_id, changes)
            async with self._sessions() as session, session.begin():
                refunds = await refund_open(
                    session,
                    "owner = :o",
                    {"o": dead_id},
                    f"refunded by {self.id}: instance {dead_id} was gone",
                )
            changes += refunds
        async with self._sessions() as session, session.begin():
            refunds = await refund_open(
                session,
                "owner IN (SELECT id FROM instances WHERE recovered_at IS NOT NULL "
                f"AND recovered_at < {db_now(session)} - :dead)",
                {"dead": self._dead_ms},
                f"refunded by {self.id}: its instance was gone",
            )
        changes += refunds
        return recovered

    async def _claim(self, dead_id: str) -> bool:
        async with self._sessions() as session, session.begin():
            now = db_now(session)
            claim = await session.execute(
                text(
                    f"UPDATE instances SET recovered_by = :me, recovered_at = {now} WHERE id = :dead "
                    f"AND recovered_by IS NULL AND stopped_at IS NULL AND heartbeat_at < {now} - :ms"
                ),
                {"me": self.id, "dead": dead_id, "ms": self._dead_ms},
            )
        return bool(claim.rowcount == 1)  # type: ignore[attr-defined]

    async def _replay(self, folder: Path, owner: str, changes: list[dict[str, Any]]) -> None:
        """A sibling's journal (same data folder): its last settlements are charged, not refunded."""
        paths = segments(folder)
        written = Written()
        try:
            await replay(self._sessions, paths, owner, self._quarantine, written)
        finally:
            changes += [undo(op) for op in written.unwritten_ops()]
        remove(paths)
        remove_folder(folder)

    async def retire(self) -> list[dict[str, Any]]:
        """At a clean shutdown, after the books are written: refund what this instance still
        holds open, and say it stopped (nobody needs to recover it)."""
        async with self._sessions() as session, session.begin():
            refunds = await refund_open(
                session, "owner = :o", {"o": self.id}, "refunded at shutdown: the request did not end"
            )
            await session.execute(
                text(f"UPDATE instances SET stopped_at = {db_now(session)} WHERE id = :me"), {"me": self.id}
            )
        return refunds

    # --- the heartbeat loop --------------------------------------------------------------------
    def start(self, lock: asyncio.Lock, absorb: Callable[[list[dict[str, Any]]], None]) -> None:
        """Heartbeat and sweep every heartbeat interval. `lock` (the books') is held while a
        sweep changes balances and `absorb` hands the changes to the live balances."""
        self._lock, self._absorb = lock, absorb
        failed = "instance heartbeat or sweep failed; will retry"
        self._task = every(self._heartbeat, self._round, "instance-heartbeat", failed)

    async def _round(self) -> None:
        await self.beat()
        assert self._lock is not None
        assert self._absorb is not None
        changes: list[dict[str, Any]] = []
        recovered: list[str] = []
        async with self._lock:
            try:
                recovered = await self.sweep(changes)
            finally:
                if changes:
                    self._absorb(changes)
        for callback in self.on_gone if recovered else ():
            await callback(recovered)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
