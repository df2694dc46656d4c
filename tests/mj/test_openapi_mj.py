"""The MJ routes' real answers match what /openapi.json says of them, and the fields it marks
required are refused (code 4) when left out."""

from __future__ import annotations

from typing import Any

import httpx

from tests.mj.kit import Mj
from tests.simulator.mjkit import data_url
from tests.support.processes import Gateway
from tests.test_openapi import _operation, _resolve, check_answer


def test_answers_match_the_document(mj: Mj, gw: Gateway) -> None:
    doc: dict[str, Any] = httpx.get(gw.url + "/openapi.json").json()
    r = mj.http.post("/mj/submit/imagine", json={"prompt": "documented"})
    check_answer(doc, "POST", "/mj/submit/imagine", r)
    task, _ = mj.run(r.json()["result"])
    fetched = mj.http.get(f"/mj/task/{task['id']}/fetch")
    check_answer(doc, "GET", "/mj/task/{id}/fetch", fetched)
    check_answer(doc, "GET", "/mj/task/{id}/fetch", mj.http.get("/mj/task/1234567890123456/fetch"))
    check_answer(doc, "GET", "/mj/task/{id}/image-seed", mj.http.get(f"/mj/task/{task['id']}/image-seed"))
    listed = mj.http.post("/mj/task/list-by-condition", json={"ids": [task["id"]]})
    check_answer(doc, "POST", "/mj/task/list-by-condition", listed)
    check_answer(doc, "GET", "/mj/task/list", mj.http.get("/mj/task/list"))
    waiting = mj.act(mj.pressed(task, "U1"), "Custom Zoom")
    check_answer(doc, "GET", "/mj/task/{id}/fetch", mj.http.get(f"/mj/task/{waiting['result']}/fetch"))
    failed = mj.submit("imagine", prompt="x --sim-fail no")
    done, _ = mj.run(failed["result"])
    check_answer(doc, "GET", "/mj/task/{id}/fetch", mj.http.get(f"/mj/task/{done['id']}/fetch"))
    check_answer(doc, "POST", "/mj/submit/blend", mj.http.post("/mj/submit/blend", json={"base64Array": []}))
    check_answer(doc, "POST", "/mj/submit/imagine", httpx.post(gw.url + "/mj/submit/imagine", json={}))


def test_required_fields_are_refused_when_missing(mj: Mj, gw: Gateway) -> None:
    doc: dict[str, Any] = httpx.get(gw.url + "/openapi.json").json()
    pic = data_url()
    full = {
        "/mj/submit/imagine": {"prompt": "cat"},
        "/mj/submit/blend": {"base64Array": [pic, pic]},
        "/mj/submit/describe": {"base64": pic},
        "/mj/submit/shorten": {"prompt": "a cat"},
        "/mj/submit/action": {"taskId": "1234567890123456", "customId": "MJ::JOB::upsample::1::x"},
        "/mj/submit/modal": {"taskId": "1234567890123456"},
        "/mj/insight-face/swap": {"sourceBase64": pic, "targetBase64": pic},
    }
    checked = 0
    for path, body in full.items():
        schema = _resolve(
            doc, _operation(doc, "POST", path)["requestBody"]["content"]["application/json"]["schema"]
        )
        assert set(schema.get("required", [])) <= set(body), path
        for name in schema.get("required", []):
            answer = mj.submit(path, **{k: v for k, v in body.items() if k != name})
            assert answer["code"] == 4 and name in answer["description"], (path, name, answer)
            checked += 1
    assert checked >= 8
    assert mj.http.get("/mj/task/list").json() == []
