"""Every MJ task's bill: reserved at submit, charged once on SUCCESS at its action's price (and
its speed mode's), refunded on FAILURE; refused submits (banned prompt) cost nothing."""

from __future__ import annotations

from tests.billing.helpers import balance, charged, consistent
from tests.mj.kit import Mj, ledger
from tests.simulator.mjkit import data_url
from tests.support.processes import Gateway, wait_until

UNIT = 500_000  # units per USD (AITRE_QUOTA_PER_USD's default)


def _charged(gw: Gateway, task_id: str) -> int:
    return charged(ledger(gw, task_id))


def test_success_is_charged_once_at_the_actions_price(mj: Mj, gw: Gateway) -> None:
    start = balance(gw, mj.username)
    grid = mj.done("imagine", prompt="a priced cat")
    assert _charged(gw, grid["id"]) == UNIT // 10  # mj_imagine: $0.10
    log = gw.wait_log(grid["id"])  # one usage row per task, named by it
    assert (log["endpoint"], log["model"], log["quota"]) == ("mj.imagine", "mj_imagine", UNIT // 10)
    assert len(gw.logs_for(grid["id"])) == 1
    up = mj.pressed(grid, "U2")
    assert _charged(gw, up["id"]) == UNIT // 20  # mj_upscale: $0.05
    described = mj.done("describe", base64=data_url((120, 80)))
    assert _charged(gw, described["id"]) == UNIT // 20
    wait_until(lambda: balance(gw, mj.username) == start - UNIT // 10 - UNIT // 20 * 2)
    # fetching again and again charges nothing more
    for _ in range(3):
        mj.fetch(grid["id"])
    assert balance(gw, mj.username) == start - UNIT // 10 - UNIT // 20 * 2
    assert consistent(gw, mj.username)


def test_failure_is_refunded(mj: Mj, gw: Gateway) -> None:
    start = balance(gw, mj.username)
    answer = mj.submit("imagine", prompt="a doomed cat --sim-fail the GPU melted")
    assert answer["code"] == 1
    task, _ = mj.run(answer["result"])
    assert task["status"] == "FAILURE" and task["failReason"] == "the GPU melted"
    assert task["progress"] == "" and task["imageUrl"] is None and task["buttons"] == []
    entries = ledger(gw, task["id"])
    assert "refund" in entries and charged(entries) == 0
    assert gw.wait_log(task["id"])["quota"] == 0
    wait_until(lambda: balance(gw, mj.username) == start)
    assert consistent(gw, mj.username)


def test_a_banned_prompt_is_code_24_and_costs_nothing(mj: Mj, gw: Gateway) -> None:
    start = balance(gw, mj.username)
    answer = mj.submit("imagine", prompt="something forbidden --sim-banned")
    assert answer["code"] == 24 and answer["result"] is None and answer["description"]
    wait_until(lambda: balance(gw, mj.username) == start)
    assert consistent(gw, mj.username)


def test_a_banned_modal_prompt_refunds_the_waiting_task(mj: Mj, gw: Gateway) -> None:
    start = balance(gw, mj.username)
    up = mj.pressed(mj.done("imagine", prompt="a windmill"), "U1")
    zoom = mj.act(up, "Custom Zoom")
    assert zoom["code"] == 21
    refused = mj.submit("modal", taskId=zoom["result"], prompt="forbidden --sim-banned --zoom 1.5")
    assert refused["code"] == 24
    assert mj.fetch(zoom["result"])["status"] == "FAILURE"
    assert charged(ledger(gw, zoom["result"])) == 0
    wait_until(lambda: balance(gw, mj.username) == start - UNIT // 10 - UNIT // 20)


def test_relax_mode_costs_the_relax_price(mj: Mj, gw: Gateway) -> None:
    task = mj.done("imagine", prompt="a slow cat --relax")
    assert task["properties"]["mode"] == "relax"
    assert _charged(gw, task["id"]) == UNIT // 20  # mj_imagine relax: $0.05
    turbo = mj.done("imagine", prompt="a quick cat --turbo")
    assert _charged(gw, turbo["id"]) == UNIT // 5  # turbo: $0.20
