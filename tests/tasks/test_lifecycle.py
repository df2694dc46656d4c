"""A task's life through a real gateway and a real upstream: submitted, polled, its picture kept,
charged once; refused, failed and timed-out tasks refunded exactly."""

from __future__ import annotations

import json

import httpx

from tests.support.processes import Gateway, wait_until
from tests.tasks.kit import (
    StubUpstream,
    balance,
    submit,
    submit_ok,
    wait_billed,
    wait_final,
)


def test_task_succeeds_keeps_its_picture_and_is_charged_once(gw: Gateway) -> None:
    before = balance(gw)
    task_id = submit_ok(gw, cost=1234, steps=3, step_s=0.2)
    done = wait_final(gw, task_id)
    assert done["status"] == "succeeded", done
    assert done["progress"] == 100
    image = httpx.get(done["imageUrl"])
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG")
    assert done["imageUrl"].startswith(gw.url + "/media/")
    row = wait_billed(gw, task_id)
    assert row["cost"] == 1234
    assert balance(gw) == before - 1234
    logs = gw.sql("SELECT * FROM usage_logs WHERE request_id = ?", (task_id,))
    assert len(logs) == 1
    assert (logs[0]["quota"], logs[0]["status_code"], logs[0]["endpoint"]) == (1234, 200, "stub.imagine")
    ledger = gw.sql("SELECT kind, amount FROM ledger WHERE hold_id = ?", (f"task_{task_id}",))
    assert sorted((r["kind"], r["amount"]) for r in ledger) == [("reserve", -1234), ("settle", 0)]


def test_refused_failed_and_timed_out_tasks_are_refunded_exactly(gw: Gateway, stub: StubUpstream) -> None:
    before = balance(gw)
    refused = submit_ok(gw, cost=500, mode="refuse")
    failed = submit_ok(gw, cost=700, mode="fail", step_s=0.2)
    stuck = submit_ok(gw, cost=900, mode="never", timeout=2)
    assert wait_final(gw, refused)["error_code"] == "stub_refused"
    assert wait_final(gw, failed)["error_code"] == "upstream_failed"
    timed_out = wait_final(gw, stuck)
    assert (timed_out["status"], timed_out["error_code"]) == ("failed", "task_timeout")
    for task_id in (refused, failed, stuck):
        assert wait_billed(gw, task_id)["cost"] == 0
    assert balance(gw) == before
    # The upstream was told to stop the job that timed out.
    upstream_id = gw.sql("SELECT upstream_id FROM tasks WHERE id = ?", (stuck,))[0]["upstream_id"]
    wait_until(lambda: upstream_id in stub.stats()["cancels"])
    statuses = {r["request_id"]: r["status_code"] for r in gw.sql("SELECT * FROM usage_logs")}
    assert (statuses[refused], statuses[failed], statuses[stuck]) == (400, 502, 504)


def test_not_enough_quota_is_402_before_anything_is_written(gw: Gateway) -> None:
    resp = submit(gw, cost=10**12, id="9999000011112222")
    assert resp.status_code == 402
    assert resp.json()["error"]["code"] == "insufficient_quota"
    assert gw.sql("SELECT * FROM tasks WHERE id = '9999000011112222'") == []
    assert gw.sql("SELECT * FROM ledger WHERE hold_id = 'task_9999000011112222'") == []


def _key_of(gw: Gateway, task_id: str) -> str:
    key: str = gw.sql("SELECT submit_key FROM tasks WHERE id = ?", (task_id,))[0]["submit_key"]
    return key


def test_a_submit_cut_off_without_an_answer_is_looked_up_not_sent_again(
    gw: Gateway, stub: StubUpstream
) -> None:
    before = balance(gw)
    task_id = submit_ok(gw, cost=300, mode="drop", steps=2, step_s=0.2)
    done = wait_final(gw, task_id)
    assert done["status"] == "succeeded", done
    assert stub.stats()["submits"][_key_of(gw, task_id)] == 1
    history = json.loads(gw.sql("SELECT history FROM tasks WHERE id = ?", (task_id,))[0]["history"])
    notes = [h.get("note", "") for h in history]
    assert any("found upstream" in n for n in notes), notes
    wait_billed(gw, task_id)
    assert balance(gw) == before - 300


def test_without_lookup_an_interrupted_submit_fails_refunded_and_is_not_sent_again(
    gw: Gateway, stub: StubUpstream
) -> None:
    before = balance(gw)
    task_id = submit_ok(gw, cost=300, mode="drop", model="stub-nolookup")
    done = wait_final(gw, task_id)
    assert (done["status"], done["error_code"]) == ("failed", "submit_uncertain")
    assert stub.stats()["submits"][_key_of(gw, task_id)] == 1
    wait_billed(gw, task_id)
    assert balance(gw) == before


def test_an_upstream_that_keeps_saying_busy_fails_the_task_after_the_tries(
    gw: Gateway, stub: StubUpstream
) -> None:
    before = balance(gw)
    task_id = submit_ok(gw, cost=300, mode="busy")
    done = wait_final(gw, task_id)
    assert (done["status"], done["error_code"]) == ("failed", "upstream_failed")
    row = wait_billed(gw, task_id)
    assert row["attempts"] == 3
    assert balance(gw) == before


def test_watching_a_task_sees_each_change_as_it_happens(gw: Gateway) -> None:
    task_id = submit_ok(gw, cost=100, steps=4, step_s=0.5)
    seen: list[tuple[str, int]] = []
    with httpx.stream(
        "GET",
        gw.url + "/stub/watch",
        params={"id": task_id},
        headers={"Authorization": f"Bearer {gw.user_key}"},
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            item = json.loads(line)
            seen.append((item["status"], item["progress"]))
    # The stream ends with the task; it saw the progress rise although it only looks at the
    # database every 5 s: the changes were made in this process and woke it.
    assert seen[-1] == ("succeeded", 100)
    progress = [p for s, p in seen if s == "running"]
    assert len(progress) >= 3 and progress == sorted(progress)
