"""The `midjourney-proxy` channel type against a separate midjourney-proxy server (the simulator
process, with its own key): added with the CLI, MJ tasks run there, pictures are copied into
aitre's media store, and a button runs on the channel that ran its parent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.billing.helpers import balance, charged
from tests.mj.kit import FAST, Mj, ledger, new_user
from tests.simulator.mjkit import picture
from tests.support.processes import Gateway, Simulator, wait_until


def _sim(tmp: Path, name: str) -> Simulator:
    sim = Simulator(tmp / name, f"{name}-secret").start()
    httpx.post(
        sim.url + "/_sim/config", json={"mj_step_seconds": 0.05}, headers=sim.headers
    ).raise_for_status()
    return sim


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[tuple[Simulator, Simulator]]:
    one, two = _sim(tmp_path, "one"), _sim(tmp_path, "two")
    yield one, two
    one.stop()
    two.stop()


def _mj_calls(sim: Simulator, path: str) -> int:
    return sum(1 for e in sim.events() if e["path"].endswith(path))


def test_tasks_run_on_a_midjourney_proxy_channel(tmp_path: Path, sims: tuple[Simulator, Simulator]) -> None:
    one, two = sims
    gw = Gateway(tmp_path / "gw", AITRE_SIMULATOR_ENABLED="false", **FAST)
    gw.start()
    try:
        # no --models: every MJ action; a trailing /mj on the base URL is where /mj lives
        gw.cli(
            "channel",
            "add",
            "one",
            "--type",
            "midjourney-proxy",
            "--base-url",
            one.url + "/mj",
            "--key",
            "one-secret",
        )
        listed = gw.cli("channel", "list", "--json").stdout
        assert "mj_imagine" in listed and "swap_face" in listed
        with Mj(gw, new_user(gw)) as mj:
            grid = mj.done("imagine", prompt="a proxied cat")
            assert grid["imageUrl"].startswith(gw.url + "/media/")
            assert picture(grid["imageUrl"]).size == (1024, 1024)
            assert _mj_calls(one, "/mj/submit/imagine") == 1
            assert _mj_calls(one, "/mj/task/list-by-condition") >= 1

            # A second channel, preferred for new tasks; the button still runs where its parent ran.
            gw.cli(
                "channel",
                "add",
                "two",
                "--type",
                "midjourney-proxy",
                "--base-url",
                two.url,
                "--key",
                "two-secret",
                "--priority",
                "5",
            )
            up = mj.pressed(grid, "U4")
            assert picture(up["imageUrl"]).size == (512, 512)
            assert _mj_calls(one, "/mj/submit/action") == 1 and _mj_calls(two, "/mj/submit/action") == 0
            again = mj.done("imagine", prompt="a cat on two")
            assert _mj_calls(two, "/mj/submit/imagine") == 1 and again["status"] == "SUCCESS"
    finally:
        gw.stop()


def test_the_upstreams_callback_ends_a_task_before_a_poll_would(
    tmp_path: Path, sims: tuple[Simulator, Simulator]
) -> None:
    one, _ = sims
    # Polls 30 s apart: only the callback can end the task in seconds.
    gw = Gateway(
        tmp_path / "gw",
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_TASK_POLL_MIN_SECONDS="30",
        AITRE_TASK_POLL_MAX_SECONDS="60",
    )
    gw.start()
    try:
        config = '{"callback": true}'
        gw.cli(
            "channel",
            "add",
            "one",
            "--type",
            "midjourney-proxy",
            "--base-url",
            one.url,
            "--key",
            "one-secret",
            "--config",
            config,
        )
        with Mj(gw, new_user(gw)) as mj:
            answer = mj.submit("imagine", prompt="a called-back cat")
            assert answer["code"] == 1
            t0 = time.monotonic()
            task, _ = mj.run(answer["result"], timeout=15)
            assert task["status"] == "SUCCESS" and time.monotonic() - t0 < 15
            assert picture(task["imageUrl"]).size == (1024, 1024)
            # Forged calls: no token, a wrong one, another task's.
            other = mj.submit("imagine", prompt="another cat")["result"]
            for query in (
                f"task={task['id']}",
                f"task={task['id']}&token=00",
                f"task={other}&token=" + "0" * 40,
            ):
                r = httpx.post(f"{gw.url}/mj/_callback?{query}", json={"id": "x", "status": "SUCCESS"})
                assert r.status_code == 404, r.text
    finally:
        gw.stop()


def test_upstream_failures_are_refunded_and_never_submitted_twice(
    tmp_path: Path, sims: tuple[Simulator, Simulator]
) -> None:
    one, _ = sims
    gw = Gateway(tmp_path / "gw", AITRE_SIMULATOR_ENABLED="false", **FAST)
    gw.start()
    try:
        gw.cli(
            "channel",
            "add",
            "one",
            "--type",
            "midjourney-proxy",
            "--base-url",
            one.url,
            "--key",
            "one-secret",
        )
        with Mj(gw, new_user(gw)) as mj:
            start = balance(gw, mj.username)
            # The proxy answers 503: nothing started there; the task fails, refunded.
            one.set_faults({"spec": "status=503", "path": "/mj/submit/imagine"})
            answer = mj.submit("imagine", prompt="a cat nobody draws")
            task_id = answer["result"] or mj.http.get("/mj/task/list").json()[0]["id"]
            assert answer["code"] in (9, 22), answer
            failed, _ = mj.run(task_id, timeout=60)
            assert failed["status"] == "FAILURE" and charged(ledger(gw, task_id)) == 0
            # The answer is cut after the proxy made the task: it may exist there, so the task
            # is not sent again (not here, not elsewhere); it fails, refunded.
            one.reset()
            one.set_faults({"spec": "truncate=0", "path": "/mj/submit/imagine", "times": 1})
            before = _mj_calls(one, "/mj/submit/imagine")
            lost = mj.submit("imagine", prompt="a cat whose answer was lost")
            lost_id = lost["result"] or mj.http.get("/mj/task/list").json()[0]["id"]
            ended, _ = mj.run(lost_id, timeout=60)
            assert ended["status"] == "FAILURE" and charged(ledger(gw, lost_id)) == 0
            assert _mj_calls(one, "/mj/submit/imagine") == before + 1
            wait_until(lambda: balance(gw, mj.username) == start)
    finally:
        gw.stop()
