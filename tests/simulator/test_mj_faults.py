"""midjourney-proxy in the simulator, when things go wrong or call back: injected failures,
banned prompts, stuck tasks, missing callbacks, queue answers, HTTP faults, notifyHook
callbacks, and the key (`mj-api-secret` or bearer)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.simulator.mjkit import STEP, Hooks, act, done, fetch, hook_server, run, submit
from tests.support.processes import Simulator, wait_until


@pytest.fixture(autouse=True)
def fast_clock(http: httpx.Client, simulator: Simulator) -> Iterator[None]:
    http.post("/_sim/config", json={"mj_step_seconds": STEP, "mj_steps": 5}).raise_for_status()
    yield
    simulator.reset()
    http.post("/_sim/config", json={"mj_step_seconds": 0.2, "mj_steps": 5}).raise_for_status()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    with hook_server() as h:
        yield h


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(tmp_path_factory.mktemp("keyed-mj-sim"), "mj-secret").start()
    yield sim
    sim.stop()


def test_notify_hook_gets_every_status(http: httpx.Client, hooks: Hooks) -> None:
    http.post("/_sim/config", json={"mj_step_seconds": 0.2}).raise_for_status()  # room to see each step
    answer = submit(http, "imagine", prompt="call me back", notifyHook=hooks.url("a"), state="s1")
    task, _ = run(http, answer["result"])
    calls = wait_until(lambda: (got := hooks.got("a")) and got[-1]["status"] == "SUCCESS" and got)
    assert all(c["id"] == task["id"] and c["state"] == "s1" for c in calls)
    seen = [(c["status"], c["progress"]) for c in calls]
    assert seen[0] == ("SUBMITTED", "0%") and seen[-1] == ("SUCCESS", "100%")
    assert len(set(seen)) == len(seen)  # one call per change
    progress = [int(p.rstrip("%")) for s, p in seen[1:-1]]
    assert progress and all(s == "IN_PROGRESS" for s, _ in seen[1:-1]) and progress == sorted(progress)
    assert calls[-1]["imageUrl"] == task["imageUrl"] and calls[-1]["buttons"] == task["buttons"]
    assert calls[-1]["properties"]["notifyHook"] == hooks.url("a")
    time.sleep(STEP * 3)
    assert len(hooks.got("a")) == len(calls)  # and nothing after the end


def test_actions_and_modals_call_back_too(http: httpx.Client, hooks: Hooks) -> None:
    grid = done(http, "imagine", prompt="hooked")
    up = submit(
        http, "action", taskId=grid["id"], customId=grid["buttons"][0]["customId"], notifyHook=hooks.url("u")
    )
    wait_until(lambda: [c["status"] for c in hooks.got("u")][-1:] == ["SUCCESS"])
    upscaled, _ = run(http, up["result"])
    modal = act(http, upscaled, "Custom Zoom")
    time.sleep(STEP * 2)
    assert modal["code"] == 21
    submit(http, "modal", taskId=modal["result"], prompt="further --zoom 2", notifyHook=hooks.url("m"))
    calls = wait_until(lambda: (got := hooks.got("m")) and got[-1]["status"] == "SUCCESS" and got)
    assert calls[0]["status"] == "SUBMITTED" and all(c["action"] == "ZOOM" for c in calls)


def test_sim_fail_marker_ends_in_failure(http: httpx.Client, hooks: Hooks) -> None:
    http.post("/_sim/config", json={"mj_step_seconds": 0.2}).raise_for_status()
    answer = submit(
        http, "imagine", prompt="a cat --sim-fail Invalid parameter --ar 1:1", notifyHook=hooks.url("f")
    )
    assert answer["code"] == 1
    task, seen = run(http, answer["result"])
    assert task["status"] == "FAILURE" and task["failReason"] == "Invalid parameter"
    assert task["progress"] == "" and task["buttons"] == [] and task["imageUrl"] is None
    assert task["finishTime"] >= task["startTime"]
    assert seen[0] == ("SUBMITTED", "0%") and ("IN_PROGRESS", "20%") in seen
    calls = wait_until(lambda: (got := hooks.got("f")) and got[-1]["status"] == "FAILURE" and got)
    assert calls[-1]["failReason"] == "Invalid parameter"
    assert http.get(f"/mj/image/{task['id']}.png").status_code == 404


def test_banned_prompt_is_refused(http: httpx.Client) -> None:
    answer = submit(http, "imagine", prompt="something --sim-banned")
    assert answer["code"] == 24 and answer["description"] == "可能包含敏感词" and answer["result"] is None
    assert answer["properties"]["bannedWord"] and answer["properties"]["promptEn"] == "something --sim-banned"
    assert submit(http, "shorten", prompt="x --sim-banned")["code"] == 24


def test_stuck_task_never_finishes(http: httpx.Client, hooks: Hooks) -> None:
    answer = submit(http, "imagine", prompt="forever --sim-stuck", notifyHook=hooks.url("s"))
    calls = wait_until(lambda: (got := hooks.got("s")) and got[-1]["progress"] == "80%" and got)
    time.sleep(STEP * 6)  # past the time it would have ended
    task = fetch(http, answer["result"])
    assert task["status"] == "IN_PROGRESS" and task["progress"] == "80%" and task["finishTime"] is None
    assert hooks.got("s") == calls and all(c["status"] == "SUBMITTED" for c in calls[:1])
    seed = http.get(f"/mj/task/{answer['result']}/image-seed")
    assert seed.status_code == 400 and seed.json()["code"] == 4


def test_no_callback_marker_keeps_the_hook_silent(http: httpx.Client, hooks: Hooks) -> None:
    loud = submit(http, "imagine", prompt="loud", notifyHook=hooks.url("loud"))
    quiet = submit(http, "imagine", prompt="quiet --sim-no-callback", notifyHook=hooks.url("quiet"))
    assert run(http, quiet["result"])[0]["status"] == "SUCCESS"
    wait_until(lambda: [c["status"] for c in hooks.got("loud")][-1:] == ["SUCCESS"])
    assert loud["code"] == 1 and hooks.got("quiet") == []


def test_fault_items_in_a_header_or_a_path_prefix(http: httpx.Client, hooks: Hooks) -> None:
    r = http.post("/mj/submit/imagine", json={"prompt": "fine words"}, headers={"x-sim-fault": "mj_banned"})
    assert r.json()["code"] == 24
    r = http.post("/f/mj_no_callback/mj/submit/imagine", json={"prompt": "shh", "notifyHook": hooks.url("q")})
    assert run(http, r.json()["result"])[0]["status"] == "SUCCESS"
    r = http.post(
        "/f/mj_fail=Broken/mj/submit/blend", json={"base64Array": ["data:image/png;base64," + _PIXEL] * 2}
    )
    assert run(http, r.json()["result"])[0]["failReason"] == "Broken"
    time.sleep(STEP * 2)
    assert hooks.got("q") == []


def test_fault_rules_reach_tasks_and_submits(http: httpx.Client, simulator: Simulator) -> None:
    grid = done(http, "imagine", prompt="rules")
    simulator.set_faults({"spec": "mj_fail=Upstream broke", "path": "/mj/submit/action", "times": 1})
    broken, _ = run(http, act(http, grid, "U1")["result"])
    assert broken["status"] == "FAILURE" and broken["failReason"] == "Upstream broke"
    assert run(http, act(http, grid, "U1")["result"])[0]["status"] == "SUCCESS"  # one time only
    simulator.set_faults({"spec": "mj_queued=3", "model": "mj_imagine"})
    queued = submit(http, "imagine", prompt="wait your turn")
    assert queued["code"] == 22 and queued["description"] == "排队中，前面还有3个任务"
    assert queued["properties"]["numberOfQueues"] == 3
    assert run(http, queued["result"])[0]["status"] == "SUCCESS"
    simulator.set_faults({"spec": "mj_queue_full", "path": "/mj/submit/"})
    full = submit(http, "imagine", prompt="no room")
    assert full["code"] == 23 and full["result"] is None
    simulator.set_faults({"spec": "mj_stuck", "path": "/mj/submit/describe"})
    stuck = submit(http, "describe", base64="data:image/png;base64," + _PIXEL)
    time.sleep(STEP * 8)
    assert fetch(http, stuck["result"])["status"] == "IN_PROGRESS"
    assert http.post("/_sim/faults", json=[{"spec": "mj_bogus"}]).status_code == 400


def test_http_faults_use_springs_error_shape(http: httpx.Client, simulator: Simulator) -> None:
    task = done(http, "imagine", prompt="flaky")
    r = http.get(f"/f/status=503/mj/task/{task['id']}/fetch")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == 503 and body["error"] == "Service Unavailable" and "timestamp" in body
    assert http.get(f"/f/status=503,p=0/mj/task/{task['id']}/fetch").json()["id"] == task["id"]
    simulator.set_faults({"spec": "status=500", "path": "/mj/task/list-by-condition", "times": 1})
    assert http.post("/mj/task/list-by-condition", json={"ids": [task["id"]]}).status_code == 500
    assert http.post("/mj/task/list-by-condition", json={"ids": [task["id"]]}).json()[0]["id"] == task["id"]
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/mj/submit/imagine", json={"prompt": "cut"}, headers={"x-sim-fault": "truncate"})
    events = [e for e in simulator.events() if e["model"] == "mj_imagine"]
    assert events and events[-1]["outcome"] == "fault"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"mj-api-secret": "mj-secret"}, 200),
        ({"authorization": "Bearer mj-secret"}, 200),
        ({"mj-api-secret": "wrong"}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({}, 401),
    ],
)
def test_the_key_goes_in_mj_api_secret_or_bearer(
    keyed: Simulator, headers: dict[str, str], status: int
) -> None:
    r = httpx.post(keyed.url + "/mj/submit/imagine", json={"prompt": "keyed"}, headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.content == b""  # the proxy's interceptor answers with no body
        for path in ("/mj/task/1/fetch", "/mj/task/1/image-seed"):
            assert httpx.get(keyed.url + path, headers=headers).status_code == 401
        assert (
            httpx.post(keyed.url + "/mj/task/list-by-condition", json={}, headers=headers).status_code == 401
        )
        return
    task_id = r.json()["result"]
    task = wait_until(
        lambda: (
            (t := httpx.get(f"{keyed.url}/mj/task/{task_id}/fetch", headers=headers).json())["status"]
            == "SUCCESS"
            and t
        )
    )
    assert httpx.get(task["imageUrl"]).status_code == 200  # a CDN-style link: no key


_PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
