"""`sora_video2` by chat, streamed: the official SDK parses every chunk; the answer starts at once
with the task's id, reports rising progress, pings while quiet, and ends with a link to an mp4
in aitre's media store with the size and length the model name asks for; text-to-video and
image-to-video (a data URI and a URL, fetched by aitre); charged exactly the video's price."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from aitre.simulator.video import watermark_box
from tests.chattask.kit import LINK, ask, configure_simulator, ended_hold, new_user, quota, stream, user_task
from tests.simulator.media import quadrants_png, video_frame, video_info
from tests.support.clients import client
from tests.support.processes import Gateway, Simulator

# sora_video2-landscape: sora-2 at $0.10/s for 10 s, in units ($1 = 500,000)
LANDSCAPE_10S_UNITS = 500_000


def test_sdk_stream_text_to_video(gw: Gateway, simulator: Simulator) -> None:
    configure_simulator(simulator, video_max_side=0, video_step_seconds=0.4)  # the real size
    name, key = new_user(gw)
    before = quota(gw, name)
    chunks = list(
        client(gw, key).chat.completions.create(
            model="sora_video2-landscape", messages=ask("a red fox runs over snow"), stream=True
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and "queued" in (first.content or "")
    task_id = (first.content or "").split("`")[1]
    assert task_id.startswith("video_") and len(task_id) == 6 + 32
    assert all(c.object == "chat.completion.chunk" and c.model == "sora_video2-landscape" for c in chunks)
    texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    progress = [int(t.split()[-1].rstrip("%")) for t in texts if t.startswith("> progress")]
    assert len(progress) >= 2 and progress == sorted(progress) and len(set(progress)) == len(progress)
    final = texts[-2] if not texts[-1] else texts[-1]
    link = LINK.search(final)
    assert final.startswith("video generated successful,[click here](") and link, texts
    assert link[1].startswith(gw.url + "/media/")
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.usage is not None
    assert last.usage.completion_tokens > 0 and last.usage.total_tokens == (
        last.usage.prompt_tokens + last.usage.completion_tokens
    )

    mp4 = httpx.get(link[1])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    info = video_info(mp4.content)
    assert info.codec == "h264" and info.size == (1280, 720)
    assert info.frames == 100 and abs(info.seconds - 10) < 0.2 and info.audio_codec == "aac"

    entries = ended_hold(gw, task_id)
    assert entries == {"reserve": -LANDSCAPE_10S_UNITS, "settle": LANDSCAPE_10S_UNITS - LANDSCAPE_10S_UNITS}
    assert quota(gw, name) == before - LANDSCAPE_10S_UNITS
    row = gw.wait_log(task_id)
    assert (row["endpoint"], row["model"], row["quota"], row["status_code"]) == (
        "video.create",
        "sora_video2-landscape",
        LANDSCAPE_10S_UNITS,
        200,
    )
    shown = user_task(gw, key, task_id).json()
    assert shown["status"] == "completed" and shown["url"] == link[1] and shown["size"] == "1280x720"


def test_raw_stream_pings_and_ends_cleanly(gw: Gateway, simulator: Simulator) -> None:
    configure_simulator(simulator, video_step_seconds=0.4)  # quiet spells longer than a ping
    _, key = new_user(gw)
    got = stream(gw, key, {"model": "sora_video2", "messages": ask("a quiet lake")})
    assert got.status == 200 and got.headers["content-type"].startswith("text/event-stream")
    task_id = got.headers["x-aitre-task-id"]
    assert got.times[0] < 1.0  # the first chunk comes at once, before any progress
    assert got.events.count(":") >= 2  # `: ping` while the upstream is quiet
    assert got.events[-1] == "[DONE]" and not got.errors
    finish = got.chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"]["total_tokens"] > 0
    assert task_id in got.content and LINK.search(got.content.splitlines()[-1])
    # the usage-only chunk as OpenAI sends it, when asked for
    asked = stream(
        gw,
        key,
        {"model": "sora_video2", "messages": ask("a lake"), "stream_options": {"include_usage": True}},
    )
    assert asked.chunks[-1]["choices"] == [] and asked.chunks[-1]["usage"]["prompt_tokens"] > 0
    assert asked.chunks[-2]["choices"][0]["finish_reason"] == "stop"


def _image_starts_video(mp4: bytes, png: bytes) -> bool:
    """Outside the watermark, the first frame is the image (fitted to the frame)."""
    first = video_frame(mp4, 0)
    h, w = first.shape[:2]
    with Image.open(io.BytesIO(png)) as img:
        source = np.asarray(ImageOps.fit(img.convert("RGB"), (w, h)))
    left, top, right, bottom = watermark_box(w, h)
    keep = np.ones((h, w), dtype=bool)
    keep[top:bottom, left:right] = False
    return float(np.mean(np.abs(first[keep].astype(int) - source[keep].astype(int)))) < 10


@pytest.mark.parametrize("given_as", ["data_uri", "url"])
def test_sdk_stream_image_to_video(gw: Gateway, simulator: Simulator, given_as: str) -> None:
    png = quadrants_png((180, 320))
    if given_as == "data_uri":
        image = "data:image/png;base64," + base64.b64encode(png).decode()
    else:  # a link aitre fetches itself (the simulator's file store stands in for the web)
        made = httpx.post(
            simulator.url + "/v1/images/generations",
            json={"model": "dall-e-2", "prompt": "a flag", "size": "256x256"},
            headers=simulator.headers,
        )
        image = made.json()["data"][0]["url"]
        png = httpx.get(image).content
    _, key = new_user(gw)
    chunks = list(
        client(gw, key).chat.completions.create(
            model="sora_video2-portrait",
            messages=ask("the picture comes alive", image),  # type: ignore[arg-type]
            stream=True,
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    link = LINK.search(content.splitlines()[-1])
    assert link, content
    mp4 = httpx.get(link[1]).content
    assert video_info(mp4).size == (180, 320)  # portrait, drawn at the simulator's small size
    assert _image_starts_video(mp4, png)
