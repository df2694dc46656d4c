"""Hostile and careless callers: no key, wrong key, another user's tasks, huge and malformed
input, addresses inside the network. Each answer is midjourney-proxy's (HTTP 200 with a code)
or an OpenAI-shaped HTTP error, and nothing is charged."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from tests.billing.helpers import balance
from tests.mj.kit import FAST, Mj, fast_gateway, new_user
from tests.simulator.mjkit import data_url
from tests.support.processes import Gateway, wait_until

INTERNAL = ("http://127.0.0.1:9/x.png", "http://169.254.169.254/latest/meta-data", "http://localhost/x.png")


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return str(body["error"]["code"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-wrong"}, {"mj-api-secret": "sk-wrong"}, {"Authorization": "Basic x"}],
)
def test_no_key_or_a_wrong_key_is_401(gw: Gateway, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=gw.url, headers=headers) as http:
        for method, path, body in (
            ("POST", "/mj/submit/imagine", {"prompt": "cat"}),
            (
                "POST",
                "/mj/submit/action",
                {"taskId": "1234567890123456", "customId": "MJ::JOB::upsample::1::x"},
            ),
            ("GET", "/mj/task/1234567890123456/fetch", None),
            ("GET", "/mj/task/1234567890123456/image-seed", None),
            ("POST", "/mj/task/list-by-condition", {"ids": []}),
            ("GET", "/mj/task/list", None),
        ):
            code = _error(http.request(method, path, json=body), 401)
            assert code in ("missing_api_key", "invalid_api_key"), (method, path, code)


def test_the_key_in_mj_api_secret_works_like_bearer(gw: Gateway) -> None:
    user = new_user(gw)
    with Mj(gw, user, header="mj-api-secret") as mj:
        task = mj.done("imagine", prompt="a secret cat")
    # new-api's rule: a placeholder bearer value falls back to mj-api-secret
    headers = {"Authorization": "Bearer midjourney-proxy", "mj-api-secret": user[1]}
    assert httpx.get(f"{gw.url}/mj/task/{task['id']}/fetch", headers=headers).json()["id"] == task["id"]


def test_another_users_tasks_are_not_visible(gw: Gateway) -> None:
    with Mj(gw, new_user(gw)) as alice, Mj(gw, new_user(gw)) as bob:
        hers = alice.done("imagine", prompt="alice's cat")
        up = alice.pressed(hers, "U1")
        waiting = alice.act(up, "Vary (Region)")
        assert waiting["code"] == 21
        before = balance(gw, bob.username)

        assert _error(bob.http.get(f"/mj/task/{hers['id']}/fetch"), 404) == "task_not_found"
        assert bob.http.get(f"/mj/task/{hers['id']}/image-seed").json()["code"] == 3
        assert bob.http.post("/mj/task/list-by-condition", json={"ids": [hers["id"], up["id"]]}).json() == []
        assert hers["id"] not in {t["id"] for t in bob.http.get("/mj/task/list").json()}
        pressed = bob.submit("action", taskId=hers["id"], customId=hers["buttons"][0]["customId"])
        assert pressed["code"] == 3 and pressed["result"] is None
        modal = bob.submit("modal", taskId=waiting["result"], prompt="mine now", maskBase64=data_url())
        assert modal["code"] == 3
        # Alice's button on Bob's own task: not one of his task's buttons.
        his = bob.done("imagine", prompt="bob's cat")
        spent = before - balance(gw, bob.username)
        foreign = bob.submit("action", taskId=his["id"], customId=hers["buttons"][0]["customId"])
        assert foreign["code"] == 4
        assert bob.submit("action", taskId=his["id"], customId="MJ::JOB::upsample::9::x")["code"] == 4
        assert bob.submit("action", taskId=his["id"], customId="")["code"] == 4
        assert balance(gw, bob.username) == before - spent  # only his own imagine was charged
        assert alice.fetch(waiting["result"])["status"] == "MODAL"  # untouched


def test_huge_and_malformed_input_is_refused_and_costs_nothing(mj: Mj, gw: Gateway) -> None:
    before = balance(gw, mj.username)
    pic = data_url()
    refused = [
        mj.submit("imagine", prompt="x" * 8193),
        mj.submit("imagine", prompt=""),
        mj.submit("imagine"),
        mj.submit("imagine", prompt=["not", "text"]),
        mj.submit("imagine", prompt="cat", botType="DALL_E"),
        mj.submit("imagine", prompt="cat", base64Array=["data:image/png;base64,!!!not base64!!!"]),
        mj.submit(
            "imagine",
            prompt="cat",
            base64Array=["data:image/png;base64," + base64.b64encode(b"text").decode()],
        ),
        mj.submit("imagine", prompt="cat", base64Array=[pic] * 11),
        mj.submit("imagine", prompt="cat", base64Array="not a list"),
        mj.submit("imagine", prompt="cat", state="s" * 4097),
        mj.submit("blend", base64Array=[pic] * 6),
        mj.submit("blend", base64Array=[pic]),
        mj.submit("blend", base64Array=[pic, pic], dimensions="HUGE"),
        mj.submit("describe"),
        mj.submit("describe", base64="data:text/plain;base64,aGVsbG8="),
        mj.submit("shorten", prompt="   "),
        mj.submit("/mj/insight-face/swap", sourceBase64=pic),
        mj.submit("action", customId="MJ::JOB::upsample::1::x"),
        mj.submit("action", taskId="1234567890123456"),
        mj.submit("modal", prompt="no task"),
    ]
    assert [r["code"] for r in refused] == [4] * len(refused), refused
    assert all(r["result"] is None and r["description"] for r in refused)
    for raw in (b"not json", b"[1, 2]", b""):
        r = mj.http.post("/mj/submit/imagine", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.json()["code"] == 4, r.text
    assert mj.submit("action", taskId="1234567890123456", customId="MJ::JOB::upsample::1::x")["code"] == 3

    # 50 MB of base64: refused before it is read whole (the gateway's body limit).
    huge = "data:image/png;base64," + "A" * (50 * 1024 * 1024)
    assert _error(mj.http.post("/mj/submit/imagine", json={"prompt": "cat", "base64Array": [huge]}), 413)
    # Past the per-image limit but under the body limit.
    big = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(11 * 1024 * 1024)).decode()
    assert mj.submit("blend", base64Array=[big, pic])["code"] == 4

    assert balance(gw, mj.username) == before
    assert mj.http.get("/mj/task/list").json() == []  # no task was made


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_are_refused(mj: Mj, gw: Gateway, url: str) -> None:
    before = balance(gw, mj.username)
    as_image = mj.submit("imagine", prompt="cat", base64Array=[url])
    assert as_image["code"] == 4 and "base64Array" in as_image["description"]
    assert mj.submit("describe", base64=url)["code"] == 4
    assert mj.submit("/mj/insight-face/swap", sourceUrl=url, targetBase64=data_url())["code"] == 4
    hook = mj.submit("imagine", prompt="cat", notifyHook=url)
    assert hook["code"] == 4 and "notifyHook" in hook["description"]
    assert mj.submit("imagine", prompt="cat", notifyHook="file:///etc/passwd")["code"] == 4
    assert balance(gw, mj.username) == before
    assert mj.http.get("/mj/task/list").json() == []


def test_a_user_without_balance_gets_quota_not_enough(gw: Gateway) -> None:
    with Mj(gw, new_user(gw, quota=0)) as poor:
        answer = poor.submit("imagine", prompt="a free cat")
        assert answer == {"code": 4, "description": "quota_not_enough", "result": None, "properties": {}}
        assert balance(gw, poor.username) == 0
        assert poor.http.get("/mj/task/list").json() == []


def test_too_many_open_tasks_is_queue_full(tmp_path: Path) -> None:
    gw = fast_gateway(Gateway(tmp_path / "gw", AITRE_MJ_MAX_OPEN_TASKS="2", **FAST))
    try:
        with Mj(gw, new_user(gw)) as mj:
            before = balance(gw, mj.username)
            stuck = [mj.submit("imagine", prompt=f"stuck {i} --sim-stuck") for i in range(2)]
            assert [a["code"] for a in stuck] == [1, 1]
            full = mj.submit("imagine", prompt="one more")
            assert full["code"] == 23 and full["result"] is None
            wait_until(lambda: balance(gw, mj.username) == before - 2 * 50_000)  # the two open ones are held
        with Mj(gw, new_user(gw)) as other:
            assert other.submit("imagine", prompt="someone else's")["code"] == 1  # per user
    finally:
        gw.stop()
