"""Flux (BFL's task API) under failure: a submit BFL accepted is paid for by the operator, so it
is never submitted again on another channel; passing poll failures are waited out; and when
one of n flows fails, the others are cancelled at once (no orphan polls)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import SIM_KEY, Gateway, Simulator

SUBMIT_A = "/v1/flux-dev"  # channel A: the simulator's root, where runtime fault rules apply
SUBMIT_B = "/f/delay=0/v1/flux-dev"  # channel B: a path of its own, so its calls can be told apart
POLL = "/v1/get_result"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Simulator]]:
    root: Path = tmp_path_factory.mktemp("flux")
    sim = Simulator(root / "sim").start()
    gw = Gateway(root / "gw", AITRE_SIMULATOR_ENABLED="false")
    config = {"poll_interval": 0.05, "task_timeout": 30}
    channels = [
        {
            "name": "flux-a",
            "type": "bfl",
            "base_url": sim.url,
            "key": SIM_KEY,
            "models": ["flux-dev"],
            "priority": 10,
            "config": config,
        },
        {
            "name": "flux-b",
            "type": "bfl",
            "base_url": f"{sim.url}/f/delay=0",
            "key": SIM_KEY,
            "models": ["flux-dev"],
            "config": config,
        },
    ]
    gw.apply({"prices": {"flux-dev": {"per_image": "0.025"}}, "channels": channels})
    gw.start()
    yield gw, sim
    gw.stop()
    sim.stop()


@pytest.fixture
def gw(setup: tuple[Gateway, Simulator]) -> Iterator[Gateway]:
    gw, sim = setup
    yield gw
    sim.reset()
    httpx.post(sim.url + "/_sim/config", json={"pending_polls": 2}, headers=sim.headers).raise_for_status()


@pytest.fixture
def sim(setup: tuple[Gateway, Simulator]) -> Simulator:
    return setup[1]


def _generate(gw: Gateway, prompt: str = "a red barn", n: int = 1) -> httpx.Response:
    return httpx.post(
        gw.api + "/images/generations",
        headers={"Authorization": f"Bearer {gw.user_key}"},
        json={"model": "flux-dev", "prompt": prompt, "n": n, "size": "512x512"},
        timeout=60,
    )


def _calls(sim: Simulator, since: float, path: str) -> int:
    return sum(1 for e in sim.events() if e["path"] == path and float(e["started"]) >= since)


def _attempt_channels(gw: Gateway, resp: httpx.Response) -> list[int]:
    row = gw.wait_log(resp.headers["x-request-id"])
    return [a["channel_id"] for a in json.loads(row["attempts"])]


def _channel(gw: Gateway, name: str) -> int:
    return int(gw.sql("SELECT id FROM channels WHERE name = ?", (name,))[0]["id"])


def _settled(gw: Gateway, resp: httpx.Response) -> Any:
    return gw.wait_log(resp.headers["x-request-id"])["quota"]


def test_passing_poll_failures_are_waited_out_on_the_accepted_task(gw: Gateway, sim: Simulator) -> None:
    since = time.time()
    sim.set_faults({"spec": "status=503", "path": POLL, "times": 2})
    resp = _generate(gw)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["url"].startswith(gw.url + "/media/")
    assert (_calls(sim, since, SUBMIT_A), _calls(sim, since, SUBMIT_B)) == (1, 0)
    assert _calls(sim, since, POLL) >= 2 + 3  # two failed polls, two Pending, Ready
    assert _settled(gw, resp) > 0


def test_a_failed_task_is_not_submitted_again_elsewhere(gw: Gateway, sim: Simulator) -> None:
    since = time.time()
    resp = _generate(gw, prompt="please fail-me now")
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["type"] == "upstream_error"
    assert (_calls(sim, since, SUBMIT_A), _calls(sim, since, SUBMIT_B)) == (1, 0)
    assert _attempt_channels(gw, resp) == [_channel(gw, "flux-a")] * 2  # the submit, then the failure
    assert _settled(gw, resp) == 0  # refunded


def test_a_submit_refused_before_acceptance_goes_to_the_next_channel(gw: Gateway, sim: Simulator) -> None:
    since = time.time()
    sim.set_faults({"spec": "status=503", "path": SUBMIT_A, "times": 1})
    resp = _generate(gw)
    assert resp.status_code == 200, resp.text
    assert (_calls(sim, since, SUBMIT_A), _calls(sim, since, SUBMIT_B)) == (1, 1)
    assert _attempt_channels(gw, resp) == [_channel(gw, "flux-a"), _channel(gw, "flux-b")]


def test_one_failing_flow_cancels_its_siblings_at_once(gw: Gateway, sim: Simulator) -> None:
    httpx.post(
        sim.url + "/_sim/config", json={"pending_polls": 200}, headers=sim.headers
    ).raise_for_status()  # ~10 s of polls
    since = time.time()
    # The first poll of one task says the key was refused: waiting cannot fix that.
    sim.set_faults({"spec": "status=401", "path": POLL, "times": 1})
    t0 = time.monotonic()
    resp = _generate(gw, n=3)
    assert time.monotonic() - t0 < 5
    assert resp.status_code == 502, resp.text
    assert (_calls(sim, since, SUBMIT_A), _calls(sim, since, SUBMIT_B)) == (3, 0)
    polls = _calls(sim, since, POLL)
    time.sleep(1.0)  # the siblings poll every 0.05 s: they would have polled ~40 more times
    assert _calls(sim, since, POLL) == polls
    assert _settled(gw, resp) == 0


def test_a_sibling_refused_after_another_was_accepted_is_not_submitted_again(
    gw: Gateway, sim: Simulator
) -> None:
    httpx.post(sim.url + "/_sim/config", json={"pending_polls": 200}, headers=sim.headers).raise_for_status()
    since = time.time()
    # The first submit to arrive is refused late, after its sibling was accepted (and paid for).
    sim.set_faults({"spec": "delay=1,status=503", "path": SUBMIT_A, "times": 1})
    resp = _generate(gw, n=2)
    assert resp.status_code == 502, resp.text
    assert (_calls(sim, since, SUBMIT_A), _calls(sim, since, SUBMIT_B)) == (2, 0)
    polls = _calls(sim, since, POLL)
    time.sleep(0.5)
    assert _calls(sim, since, POLL) == polls  # the accepted sibling is no longer polled
    assert _settled(gw, resp) == 0
