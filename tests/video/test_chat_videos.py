"""Videos asked for by chat (`sora_video2`, the chat side's) are video tasks like any other: the
video API shows them (OpenAI's object, the file, the list), deletes them, and refuses to remix
them (no upstream `/v1/videos` job to remix)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.simulator.media import video_info
from tests.support.processes import SIM_KEY, Gateway, Simulator
from tests.video.kit import FAST, Videos, new_user, sim_process_config

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def test_a_video_by_chat_through_the_video_api(make_gateway: Callable[..., Gateway], tmp_path: Path) -> None:
    sim = Simulator(tmp_path / "sim").start()
    try:
        sim_process_config(sim, video_max_side=160)
        gw = make_gateway(AITRE_SIMULATOR_ENABLED="false", **FAST).start()
        gw.apply({"channels": [
            {"name": "chat", "type": "chat-video", "base_url": sim.url, "key": SIM_KEY, "models": ["sora_video2"]},
            {"name": "vid", "type": "videos", "base_url": sim.url, "key": SIM_KEY, "models": ["sora-2"]},
        ]})  # fmt: skip
        user = Videos(gw, new_user(gw, "20"))
        answer = httpx.post(
            gw.api + "/chat/completions",
            json={
                "model": "sora_video2",
                "messages": [{"role": "user", "content": "a heron"}],
                "stream": False,
            },
            headers=user.auth,
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        task_id = answer.headers["x-aitre-task-id"]
        video = user.done(task_id)
        assert (video.id, video.object, video.status, video.model) == (
            task_id,
            "video",
            "completed",
            "sora_video2",
        )
        assert (video.seconds, video.size, video.prompt) == ("10", "720x1280", "a heron")
        mp4 = user.sdk.videos.download_content(task_id).read()
        assert video_info(mp4).seconds == pytest.approx(10, abs=0.3)
        part = user.http("GET", f"/v1/videos/{task_id}/content", headers={"Range": "bytes=0-7"})
        assert part.status_code == 206 and part.content == mp4[:8]
        made = user.sdk.videos.create(prompt="a heron, by the API")
        assert [v.id for v in user.sdk.videos.list()] == [made.id, task_id]
        refused = user.http("POST", f"/v1/videos/{task_id}/remix", json={"prompt": "again"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "remix_unavailable"
        assert user.sdk.videos.delete(task_id).deleted
        assert user.http("GET", f"/v1/videos/{task_id}").status_code == 404
        # gone for its owner everywhere; the row stays, for the operator and the books
        assert user.http("GET", f"/api/user/tasks/{task_id}").status_code == 404
        assert task_id not in [t["id"] for t in user.http("GET", "/api/user/tasks").json()["data"]]
        admin = {"Authorization": f"Bearer {gw.admin_key}"}
        shown = httpx.get(f"{gw.url}/api/admin/tasks/{task_id}", headers=admin).json()
        assert shown["deleted_at"] is not None and shown["status"] == "succeeded"
    finally:
        sim.stop()
