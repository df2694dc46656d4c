"""The books never stall and never lose anything: a row the database refuses is set aside (kept
in a file, logged) while the rows behind it are written, at runtime and on the next start; a
journal write that fails keeps its bytes; a database outage is bounded (503
`billing_unavailable` past `AITRE_BOOKS_MAX_PENDING`, the journal keeps the rest, all of it is
written once the database is back)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import text

from aitre.billing.books import Books
from aitre.billing.redis_bank import namespace
from aitre.store.db import make_engine, make_sessionmaker
from aitre.store.migrate import upgrade_to_head
from aitre.store.models import now_ms
from tests.billing.helpers import new_user_key
from tests.billing.pg import allow_connections, balance_and_ledger, pg_one, pg_rows, redis_user_balance
from tests.billing.test_workers import REDIS_URL
from tests.support.pg import fresh_database
from tests.support.processes import Gateway, wait_until


def _row(i: int, **extra: object) -> dict[str, object]:
    return {
        "created_at": now_ms(),
        "request_id": f"req_robust_{i:04d}",
        "user_id": 1,
        "token_id": 1,
        "channel_id": 1,
        "endpoint": "chat.completions",
        "model": "m",
        "upstream_model": "m",
        "stream": False,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "usage_estimated": False,
        "status_code": 200,
        "error": "",
        "latency_ms": 1.0,
        "ttfb_ms": 0.0,
        "client_ip": "127.0.0.1",
        "quota": 1,
        "attempts": [],
        **extra,
    }


def _quarantined(folder: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in p.read_bytes().splitlines()
    ]


async def test_a_row_the_database_refuses_is_set_aside_and_the_rows_behind_it_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with fresh_database() as url:
        engine = make_engine(url)
        await upgrade_to_head(engine)
        books = Books(make_sessionmaker(engine), tmp_path / "journal", "w", 3600)
        try:
            for i in range(10):
                # A 200-character model: PostgreSQL's varchar(128) refuses it.
                books.usage(_row(i, model="m" * 200) if i == 4 else _row(i))
            with caplog.at_level(logging.ERROR):
                await books.flush()
            async with engine.connect() as conn:
                ids = set((await conn.execute(text("SELECT request_id FROM usage_logs"))).scalars())
            assert ids == {f"req_robust_{i:04d}" for i in range(10) if i != 4}
            kept = _quarantined(tmp_path / "quarantine")
            assert [r["request_id"] for r in kept] == ["req_robust_0004"]
            assert "value too long" in str(kept[0]["refused"])
            assert any("refused" in r.message for r in caplog.records)
            # Nothing is stuck: later rows go in as usual.
            books.usage(_row(10))
            await books.flush()
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT COUNT(*) FROM usage_logs")) == 10
        finally:
            await books.stop()
            await engine.dispose()


async def test_the_next_start_sets_aside_a_refused_row_left_in_a_journal(
    make_gateway: Callable[..., Gateway],
) -> None:
    async with fresh_database() as url:
        gw = make_gateway(AITRE_DATABASE_URL=url)
        # What a killed process left: a journal with a row the database refuses, and one behind it.
        folder = gw.data_dir / "journal" / "killed"
        folder.mkdir(parents=True)
        lines = [{**_row(1, model="m" * 200), "t": "u"}, {**_row(2), "t": "u"}]
        (folder / "ledger-000000000001.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
        gw.start()  # starts (answers /healthz): the refused row does not stop recovery
        assert await pg_one(url, "SELECT string_agg(request_id, ',') FROM usage_logs") == "req_robust_0002"
        kept = _quarantined(gw.data_dir / "quarantine")
        assert [r["request_id"] for r in kept] == ["req_robust_0001"]
        assert not folder.exists()
        assert "refused" in gw.proc.log()
        gw.stop()


_JOURNAL_UNDER_A_FULL_DISK = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from aitre.billing.journal import Journal, read_segments

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the size limit: EFBIG, not a kill
    folder = Path(sys.argv[1])
    journal = Journal(folder)
    journal.append({"n": 0})
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Room for one more line and a half: then the disk is "full".
    resource.setrlimit(resource.RLIMIT_FSIZE, (journal.segments()[-1].stat().st_size + 40, hard))
    failures = 0
    for n in range(1, 6):
        try:
            journal.append({"n": n, "pad": "x" * 16})
        except OSError:
            failures += 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
    journal.flush()
    journal.close()
    ops = [e["n"] for e in read_segments(sorted(folder.glob("ledger-*.jsonl")))]
    print(json.dumps({"failures": failures, "ops": ops}))
    """
)


def test_a_journal_write_that_fails_keeps_its_bytes_for_the_next(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _JOURNAL_UNDER_A_FULL_DISK, str(tmp_path / "journal")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(result.stdout)
    assert out["failures"] >= 3  # the writes did fail...
    assert out["ops"] == [0, 1, 2, 3, 4, 5]  # ...and nothing was lost, torn or doubled


async def test_a_database_outage_is_bounded_and_nothing_is_lost(make_gateway: Callable[..., Gateway]) -> None:
    async with fresh_database() as url:
        gw = make_gateway(AITRE_DATABASE_URL=url, AITRE_REDIS_URL=REDIS_URL, AITRE_BOOKS_MAX_PENDING="30")
        gw.apply({"prices": {"gpt-4.1-mini": {"per_call": "0.001"}}})  # 500 units a request
        gw.start()
        key = new_user_key(gw, "outage", 1_000_000)
        user_id = int(await pg_one(url, "SELECT id FROM users WHERE username = 'outage'"))
        body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=gw.api, headers=headers, timeout=30) as http:
            assert (await http.post("/chat/completions", json=body)).status_code == 200
            statuses: list[int] = []
            async with allow_connections(url, False):
                for _ in range(30):
                    r = await http.post("/chat/completions", json=body)
                    statuses.append(r.status_code)
                    if r.status_code != 200:
                        assert r.status_code == 503, r.text
                        assert r.json()["error"]["code"] == "billing_unavailable"
                        assert r.headers["retry-after"] == "1"
        served = statuses.count(200)
        # Served until the bound (three entries a request: reserve, settle, usage row), then refused.
        assert 5 <= served <= 12 and statuses == [200] * served + [503] * (30 - served), statuses

        async def codes() -> Counter[int]:
            rows = await pg_rows(url, "SELECT status_code FROM usage_logs WHERE user_id = $1", user_id)
            return Counter(r["status_code"] for r in rows)

        for _ in range(100):
            if sum((await codes()).values()) == 31:
                break
            await asyncio.sleep(0.2)
        # Every request's row, the refused ones' too (kept in the journal only, then written from it).
        assert await codes() == {200: served + 1, 503: 30 - served}
        expected = 1_000_000 - 500 * (served + 1)
        assert await balance_and_ledger(url, "outage") == (expected, expected)
        assert await redis_user_balance(REDIS_URL, namespace(url), user_id) == expected
        wait_until(
            lambda: httpx.post(gw.api + "/chat/completions", json=body, headers=headers).status_code == 200
        )
        gw.stop()


async def test_a_refused_ledger_operation_changes_no_balance(tmp_path: Path) -> None:
    """A request whose hold id the database refuses (too long for its column): set aside, and
    the live balance in Redis takes back what the request took, like the database."""
    from aitre.billing.bank import Hold
    from tests.billing.test_holds import new_user, redis_balance, start, stop

    async with fresh_database() as url:
        user = await new_user(url, 1000)
        p = await start("redis-postgresql", url, tmp_path / "p")
        refused, fine = Hold("req_" + "x" * 96, user, None, 300), Hold("req_fine", user, None, 300)
        for hold in (refused, fine):
            await p.bank.reserve(hold)
            assert p.bank.settle(hold, 100) == 100
        await p.books.flush()
        name = await pg_one(url, "SELECT username FROM users WHERE id = $1", user)
        assert await balance_and_ledger(url, name) == (900, 900)  # only the fine request charged
        assert await redis_balance(p, user, 900) == 900
        kept = _quarantined(tmp_path / "p" / "quarantine")
        assert [(e["op"], e["hold_id"]) for e in kept] == [("reserve", refused.hold_id)]
        await stop(p)
