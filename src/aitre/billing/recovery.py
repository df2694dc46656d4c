"""After a process died: what it journaled but never wrote goes to the database, and the holds
it left open are refunded, once.

A restart from the same data folder (the single worker, or the parent of several before it
starts them) does this at once for every earlier process of the folder (`recover_node`): they
are all gone, since the folder's journals are its own. Instances on other data folders are left
alone: their holds are theirs until they stop heartbeating (`instances.py`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aitre.billing.journal import folders, parse_segment, remove, remove_folder, segments
from aitre.billing.ledger_rows import refund_open
from aitre.billing.writer import Quarantine, Written, missing_rows, not_written, write_batch

log = logging.getLogger(__name__)

_CHUNK = 2000  # journal entries checked and written at a time
RESTART_NOTE = "refunded on restart: the request was interrupted"


def undo(op: dict[str, Any]) -> dict[str, Any]:
    """The balance change that takes back an operation the database did not take (for the live
    balances, which applied it already)."""
    return {
        "user_id": op["user_id"],
        "token_id": op.get("token_id"),
        "amount": -int(op["amount"]),
        "token_amount": -int(op.get("token_amount", 0)),
    }


async def replay(
    sessions: async_sessionmaker[AsyncSession],
    paths: list[Path],
    owner: str,
    quarantine: Quarantine,
    written: Written,
    usage_only: bool = False,
) -> None:
    """Write what the journal segments `paths` hold and the database lacks, in order (a second
    replay of the same segments writes nothing). Reserve rows are stamped with `owner`."""
    ops: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for path in paths:
        data = await asyncio.to_thread(_read, path)  # a journal may be large: off the event loop
        for entry in parse_segment(data):
            if entry.get("t") == "u":
                rows.append(entry)
            elif "op" in entry and not usage_only:
                ops.append(entry)
            if len(ops) + len(rows) >= _CHUNK:
                await _replay_chunk(sessions, ops, rows, owner, quarantine, written)
                ops, rows = [], []
    await _replay_chunk(sessions, ops, rows, owner, quarantine, written)


async def _replay_chunk(
    sessions: async_sessionmaker[AsyncSession],
    ops: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    owner: str,
    quarantine: Quarantine,
    written: Written,
) -> None:
    if not ops and not rows:
        return
    async with sessions() as session:
        ops = await not_written(session, ops) if ops else []
        rows = await missing_rows(session, rows) if rows else []
    await write_batch(sessions, ops, rows, owner, quarantine, written)


async def recover_node(
    sessions: async_sessionmaker[AsyncSession],
    journal_root: Path,
    node: str,
    recoverer: str,
    quarantine: Quarantine,
) -> list[dict[str, Any]]:
    """Recover every earlier process of this data folder. Run before serving, by the only
    process using its journals. Returns the balance changes made (refunds, and the undoing of
    journaled operations the database did not take), for live balances kept outside it."""
    async with sessions() as session, session.begin():
        # Claimed first: no other instance starts refunding them while their journals are replayed.
        await session.execute(
            text(
                f"UPDATE instances SET recovered_by = :r, recovered_at = {db_now(session)} "
                "WHERE node = :node AND stopped_at IS NULL AND recovered_by IS NULL"
            ),
            {"r": recoverer[:64], "node": node},
        )
    found = folders(journal_root)
    written = Written()
    replayed: list[Path] = []
    for folder in found:
        paths = segments(folder)
        await replay(sessions, paths, folder.name, quarantine, written)
        replayed += paths
    async with sessions() as session, session.begin():
        refunds = await refund_open(
            session,
            "owner IN (SELECT id FROM instances WHERE node = :node) OR owner IN :owners",
            {"node": node, "owners": [f.name for f in found]},
            RESTART_NOTE,
            expanding=("owners",),
        )
    remove(replayed)
    for folder in found:
        remove_folder(folder)
    if written.ops or written.rows or refunds:
        log.warning(
            "recovery: replayed %d ledger operations and %d usage rows, refunded %d interrupted requests",
            written.ops,
            written.rows,
            len(refunds),
        )
    return [undo(op) for op in written.unwritten_ops()] + refunds


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:  # removed meanwhile by the process that wrote it: all written
        return b""


def db_now(session: AsyncSession) -> str:
    """SQL for the database's current time in ms: instances on machines whose clocks disagree
    still agree on who is gone."""
    if session.get_bind().dialect.name == "sqlite":
        return "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
