"""Driving videos and removals by chat: a gateway whose `chat-video` channel is a separate
simulator (its Sora-by-chat models) and whose `local-remover` channel is the watermark engine;
users with a balance; reading raw SSE answers; decoding the videos."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.support.processes import SIM_KEY, Gateway, Simulator, wait_until

# Tasks polled often; a short keep-alive; the gateway may fetch what the simulator and it itself
# serve on 127.0.0.1 (the local remover downloads the clip it is given; nothing else is open).
FAST = {
    "AITRE_TASK_POLL_MIN_SECONDS": "0.05",
    "AITRE_TASK_POLL_MAX_SECONDS": "0.2",
    "AITRE_CHAT_TASK_PING_SECONDS": "0.3",
    "AITRE_CHAT_TASK_WAIT_SECONDS": "4",
    "AITRE_FETCH_ALLOWED_CIDRS": "127.0.0.1/32",
    "AITRE_CHAT_REMOVER_MODELS": "sora_remover,sora_remover-relay",
    # an operator's alias: sora-2-pro at 1792x1024 for 15 s (the simulator makes it as its own
    # landscape 15 s video: the channel maps the name)
    "AITRE_CHAT_VIDEO_MODELS": '{"sora_video2-pro-landscape": {"model": "sora-2-pro", "size": "1792x1024", "seconds": "15"}}',
}
VIDEO_ALIASES = [
    "sora_video2",
    "sora_video2-portrait",
    "sora_video2-landscape",
    "sora_video2-portrait-15s",
    "sora_video2-landscape-15s",
]
LINK = re.compile(r"\[click here\]\((http://[^)\s]+/media/[A-Za-z0-9_-]{22}\.mp4)\)$")


def configure_simulator(sim: Simulator, **config: Any) -> None:
    """The simulator's video clock fast and its clips small (override per test)."""
    body = {"video_step_seconds": 0.05, "video_max_side": 320, "video_chat_style": "quote", **config}
    httpx.post(sim.url + "/_sim/config", json=body, headers=sim.headers).raise_for_status()


def channels(sim: Simulator) -> dict[str, Any]:
    """Videos by chat on the simulator; removals on the local engine (`sora_remover`) or relayed
    to the simulator's `sora_remover` (`sora_remover-relay`, mapped)."""
    return {
        "channels": [
            {
                "name": "sora-by-chat",
                "type": "chat-video",
                "base_url": sim.url,
                "key": SIM_KEY,
                "models": [*VIDEO_ALIASES, "sora_video2-pro-landscape", "sora_remover-relay"],
                "model_mapping": {
                    "sora_remover-relay": "sora_remover",
                    "sora_video2-pro-landscape": "sora_video2-landscape-15s",
                },
            },
            {"name": "local-remover", "type": "local-remover", "models": ["sora_remover"]},
        ]
    }


def start(gw: Gateway, sim: Simulator) -> Gateway:
    gw.start()
    try:
        gw.apply(channels(sim))
    except BaseException:
        gw.stop()
        raise
    return gw


def new_user(gw: Gateway, usd: str = "10") -> tuple[str, str]:
    """(username, key) of a new user with `usd` dollars."""
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    name = f"vc-{uuid.uuid4().hex[:8]}"
    user = httpx.post(f"{gw.url}/api/admin/users", json={"username": name, "usd": usd}, headers=admin)
    assert user.status_code == 201, user.text
    key = httpx.post(f"{gw.url}/api/admin/keys", json={"user_id": user.json()["id"]}, headers=admin)
    assert key.status_code == 201, key.text
    return name, str(key.json()["key"])


def quota(gw: Gateway, username: str) -> int:
    return int(gw.sql("SELECT quota FROM users WHERE username = ?", (username,))[0]["quota"])


def hold(gw: Gateway, task_id: str) -> dict[str, int]:
    rows = gw.sql("SELECT kind, amount FROM ledger WHERE hold_id = ?", (f"task_{task_id}",))
    return {r["kind"]: int(r["amount"]) for r in rows}


def ended_hold(gw: Gateway, task_id: str, timeout: float = 20.0) -> dict[str, int]:
    """The task's ledger entries once its hold is settled or refunded."""
    return dict(
        wait_until(lambda: (h := hold(gw, task_id)) and ("settle" in h or "refund" in h) and h, timeout)
    )


def ask(text: str, image: str | None = None) -> list[dict[str, Any]]:
    if image is None:
        return [{"role": "user", "content": text}]
    parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": image}}]
    return [{"role": "user", "content": parts}]


@dataclass
class Streamed:
    status: int
    headers: dict[str, str]
    events: list[Any] = field(default_factory=list)  # JSON payloads, "[DONE]", ":" for a comment
    times: list[float] = field(default_factory=list)  # when each arrived (s since the request)

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict) and e.get("object") == "chat.completion.chunk"]

    @property
    def content(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c["choices"])

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e["error"] for e in self.events if isinstance(e, dict) and "error" in e]


def stream(gw: Gateway, key: str, body: dict[str, Any], timeout: float = 60.0) -> Streamed:
    """A streamed chat request read to its end, raw."""
    t0 = time.monotonic()
    with httpx.stream(
        "POST",
        gw.api + "/chat/completions",
        json={**body, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    ) as r:
        out = Streamed(r.status_code, dict(r.headers))
        if r.status_code != 200:
            r.read()
            out.events.append(r.json())
            return out
        for line in r.iter_lines():
            if line.startswith(":"):
                out.events.append(":")
            elif line.startswith("data: "):
                data = line[6:]
                out.events.append(data if data == "[DONE]" else orjson.loads(data))
            else:
                continue
            out.times.append(time.monotonic() - t0)
    return out


def user_task(gw: Gateway, key: str, task_id: str) -> httpx.Response:
    return httpx.get(f"{gw.url}/api/user/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})


def wait_task(gw: Gateway, key: str, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The user's view of the task once it has ended."""

    def ended() -> dict[str, Any] | None:
        r = user_task(gw, key, task_id)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body if body["completed_at"] is not None else None

    found: dict[str, Any] = wait_until(ended, timeout, 0.1)
    return found


def sim_chats(sim: Simulator, model: str, since: float) -> list[dict[str, Any]]:
    """The simulator's chat requests for `model` since `since` (its clock, seconds)."""
    return [
        e
        for e in sim.events()
        if e["path"].endswith("/chat/completions") and e["model"] == model and e["started"] >= since
    ]
