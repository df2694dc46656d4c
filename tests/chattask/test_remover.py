"""`sora_remover` by chat: on the local engine, a watermarked `sora_video2` clip comes back with the
same frames, frame rate, size and sound, and the mark's region close to the clip drawn without
the mark (PSNR above the floor the watermark README commits to); relayed to a `chat-video`
upstream; a link that is not a video, or a video without the mark, fails and is refunded."""

from __future__ import annotations

import io
import math
import secrets
from fractions import Fraction
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest

from aitre.simulator import video as sim_video
from aitre.watermark.template import MarkTemplate
from tests.chattask.kit import LINK, ask, ended_hold, new_user, quota, stream
from tests.remover.test_quality import MARK_PSNR_FLOOR
from tests.support.clients import client
from tests.support.processes import Gateway

REMOVAL_UNITS = 25_000  # $0.05


def _streams(data: bytes) -> dict[str, Any]:
    with av.open(io.BytesIO(data)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        info = {
            "size": (video.codec_context.width, video.codec_context.height),
            "fps": video.average_rate,
            "audio": (audio.codec_context.name, audio.codec_context.sample_rate),
            "audio_seconds": float(audio.duration * audio.time_base) if audio.duration else 0.0,
        }
        info["frames"] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return info


def _mark_psnr(
    frames: list[np.ndarray[Any, Any]], clean: list[np.ndarray[Any, Any]], w: int, h: int
) -> float:
    """PSNR inside the mark's footprint (where its opacity is above zero), all frames pooled."""
    template = MarkTemplate.load(None, sim_video.WATERMARK_REFERENCE)
    left, top, right, bottom = sim_video.watermark_box(w, h)
    alpha = template.at(template.expected_scale(w, h), full_range=False).alpha[: bottom - top, : right - left]
    mask = alpha > 0
    errors = [
        (got[top:bottom, left:right][mask].astype(float) - want[top:bottom, left:right][mask].astype(float))
        ** 2
        for got, want in zip(frames, clean, strict=True)
    ]
    mse = float(np.mean(np.concatenate([e.ravel() for e in errors])))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _made(gw: Gateway, key: str, model: str, prompt: str) -> str:
    answer = client(gw, key).chat.completions.create(model=model, messages=ask(prompt))
    link = LINK.search(answer.choices[0].message.content or "")
    assert link, answer
    return link[1]


def test_local_remover_cleans_a_generated_clip(gw: Gateway) -> None:
    name, key = new_user(gw)
    prompt = "a sailing boat on a calm sea"
    original_url = _made(gw, key, "sora_video2-landscape", prompt)
    before = quota(gw, name)
    got = stream(gw, key, {"model": "sora_remover", "messages": ask(f"remove the watermark: {original_url}")})
    task_id = got.headers["x-aitre-task-id"]
    assert task_id.startswith("remover_") and not got.errors, got.events
    final = got.content.splitlines()[-1]
    link = LINK.search(final)
    assert final.startswith("watermark removed successfully,[click here](") and link
    original, cleaned = httpx.get(original_url).content, httpx.get(link[1]).content
    a, b = _streams(original), _streams(cleaned)
    assert len(b["frames"]) == len(a["frames"]) == 100
    assert b["fps"] == a["fps"] == Fraction(10) and b["size"] == a["size"] == (320, 180)
    assert b["audio"] == a["audio"] and abs(b["audio_seconds"] - a["audio_seconds"]) < 0.05

    clip = sim_video.Clip(prompt, 320, 180, 10, "sora_video2-landscape")  # the same clip, unmarked
    clean = [np.asarray(f) for f in sim_video._frames(clip, sim_video._digest(clip))]
    marked_psnr = _mark_psnr(a["frames"], clean, 320, 180)
    cleaned_psnr = _mark_psnr(b["frames"], clean, 320, 180)
    print(f"mark footprint PSNR: marked {marked_psnr:.1f} dB, cleaned {cleaned_psnr:.1f} dB")
    assert cleaned_psnr > MARK_PSNR_FLOOR and cleaned_psnr > marked_psnr + 10, (marked_psnr, cleaned_psnr)

    assert ended_hold(gw, task_id) == {"reserve": -REMOVAL_UNITS, "settle": 0}
    assert quota(gw, name) == before - REMOVAL_UNITS


def test_relayed_remover(gw: Gateway) -> None:
    _, key = new_user(gw)
    original_url = _made(gw, key, "sora_video2", "a windmill")
    answer = client(gw, key).chat.completions.create(
        model="sora_remover-relay",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "clean this"},
                    {"type": "video_url", "video_url": {"url": original_url}},
                ],
            }
        ],
    )
    link = LINK.search(answer.choices[0].message.content or "")
    assert link and (answer.choices[0].message.content or "").startswith("watermark removed successfully")
    cleaned = _streams(httpx.get(link[1]).content)
    assert len(cleaned["frames"]) == 100 and cleaned["size"] == (180, 320)


@pytest.mark.parametrize(
    ("what", "code", "status"),
    [("not_a_video", "not_a_video", 400), ("no_mark", "no_watermark_found", 422)],
)
def test_local_remover_refunds_what_it_cannot_clean(gw: Gateway, what: str, code: str, status: int) -> None:
    name, key = new_user(gw)
    if what == "not_a_video":
        url = gw.url + "/healthz"
    else:  # a clip drawn without the mark (at 640x360: smaller clips can fool the detector)
        url = _served(gw, sim_video.render(sim_video.Clip("no mark here", 640, 360, 2)).mp4)
    before = quota(gw, name)
    with pytest.raises(openai.APIStatusError) as caught:
        client(gw, key).chat.completions.create(model="sora_remover", messages=ask(url))
    assert caught.value.status_code == status and caught.value.code == code, caught.value.message
    task_id = caught.value.response.headers["x-aitre-task-id"]
    assert ended_hold(gw, task_id) == {"reserve": -REMOVAL_UNITS, "refund": REMOVAL_UNITS}
    assert quota(gw, name) == before


def _served(gw: Gateway, data: bytes) -> str:
    """A link to `data` on the gateway's own media server (put in its folder)."""
    media_id = secrets.token_urlsafe(16)
    folder = gw.data_dir / "media" / media_id[:2] / media_id[2:4]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{media_id}.mp4").write_bytes(data)
    return f"{gw.url}/media/{media_id}.mp4"
