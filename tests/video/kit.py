"""Driving aitre's video API as OpenAI's SDK does, against a gateway whose simulator (built-in, or a
separate process behind a `videos` channel) makes videos in a fraction of a second.

`fast_gateway` starts a gateway polling tasks often and speeds up its built-in simulator's video
clock (small renders unless a test asks for the real size); `Videos(gw, new_user(gw))` is a user
with a balance and the SDK on its key; `ledger(gw, video_id)` reads the video's hold once it has
ended."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

from tests.billing.helpers import entries
from tests.mj.kit import new_user
from tests.support.clients import client
from tests.support.processes import Gateway, Simulator, wait_until

FAST = {"AITRE_TASK_POLL_MIN_SECONDS": "0.05", "AITRE_TASK_POLL_MAX_SECONDS": "0.2"}
SIM_FAST = {"video_step_seconds": 0.05, "video_max_side": 96}
UNIT = 500_000  # quota units per USD (the default)

__all__ = ["FAST", "SIM_FAST", "UNIT", "Videos", "ledger", "new_user", "sim_config"]


def sim_config(gw: Gateway, **settings: Any) -> None:
    """The built-in simulator's video settings (a task keeps those it was made with)."""
    gw.sim_control("/_sim/config", {**SIM_FAST, **settings}).raise_for_status()


def sim_process_config(sim: Simulator, **settings: Any) -> None:
    httpx.post(
        sim.url + "/_sim/config", json={**SIM_FAST, **settings}, headers=sim.headers
    ).raise_for_status()


def fast_gateway(gw: Gateway) -> Gateway:
    gw.start()
    try:
        sim_config(gw)
    except BaseException:
        gw.stop()
        raise
    return gw


class Videos:
    """A user of the gateway: its name, key, the SDK on that key, and plain HTTP."""

    def __init__(self, gw: Gateway, user: tuple[str, str]) -> None:
        self.gw = gw
        self.username, self.key = user
        self.sdk: openai.OpenAI = client(gw, self.key)
        self.auth = {"Authorization": f"Bearer {self.key}"}

    def http(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return httpx.request(method, self.gw.url + path, headers=headers, timeout=60, **kw)

    def done(self, video_id: str, timeout: float = 30.0) -> Any:
        """Retrieve until the video ends; its last state (completed or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            video = self.sdk.videos.retrieve(video_id)
            if video.status in ("completed", "failed"):
                return video
            time.sleep(0.03)
        raise AssertionError(f"{video_id} did not end within {timeout}s")

    def made(self, **params: Any) -> Any:
        """Create a video and wait for it; it must have completed."""
        video = self.done(self.sdk.videos.create(**params).id)
        assert video.status == "completed", video
        return video


def ledger(gw: Gateway, video_id: str, timeout: float = 15.0) -> dict[str, int]:
    """The video's hold once it has ended (settled or refunded): kind -> amount."""
    return dict(
        wait_until(
            lambda: (e := entries(gw, f"task_{video_id}")) and ("settle" in e or "refund" in e) and e, timeout
        )
    )
