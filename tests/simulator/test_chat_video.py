"""Sora by chat on the simulator: `sora_video2` streams progress and ends with a link to a real
mp4 (in the two styles upstreams use), `sora_remover` paints out the watermark."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import orjson
import pytest
from PIL import Image, ImageOps

from aitre.simulator.video import watermark_box
from tests.simulator.media import quadrants_png, video_frame, video_info
from tests.simulator.test_videos import configure, mean_abs_diff
from tests.support.processes import Simulator, wait_until

LINK = re.compile(r"\[click here\]\((http://[^)\s]+/files/[0-9a-f]{32}\.mp4)\)$")


@pytest.fixture
def small(http: httpx.Client) -> Iterator[None]:
    """Clips drawn at most 128 pixels long and a quick clock; the defaults again afterwards."""
    configure(http, video_step_seconds=0.05, video_max_side=128)
    yield
    configure(http)


def ask(text: str, image: str | None = None) -> list[dict[str, Any]]:
    if image is None:
        return [{"role": "user", "content": text}]
    parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": image}}]
    return [{"role": "user", "content": parts}]


def events(simulator: Simulator, body: dict[str, Any]) -> list[Any]:
    """Every SSE data payload of a streamed answer (`[DONE]` as the string), and comments as
    `":"`."""
    out: list[Any] = []
    with httpx.stream(
        "POST", simulator.url + "/v1/chat/completions", json=body, headers=simulator.headers, timeout=60
    ) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith(":"):
                out.append(":")
            elif line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


@pytest.mark.usefixtures("small")
def test_stream_reports_rising_progress_and_ends_with_a_link(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="sora_video2", messages=ask("a war cat"), stream=True)  # type: ignore[call-overload]
    chunks = list(stream)
    texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert '"orientation": "portrait"' in "".join(texts) and "> ID: `task_" in "".join(texts)
    progress = [int(n) for t in texts for n in re.findall(r"Progress (\d+)%", t)]
    assert len(set(progress)) >= 3 and progress == sorted(progress) and progress[-1] == 100
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop" and final.usage is not None
    assert final.usage.completion_tokens > 0 and final.usage.prompt_tokens > 0
    link = LINK.search(texts[-2])
    assert link and texts[-2].startswith("\n\nvideo generated successful,"), texts[-2]
    mp4 = httpx.get(link[1])
    assert mp4.headers["content-type"] == "video/mp4"
    info = video_info(mp4.content)
    assert info.codec == "h264" and info.size == (72, 128)  # 720x1280 drawn at most 128 long
    assert abs(info.frames - 100) <= 1 and info.audio_codec == "aac" and abs(info.audio_seconds - 10) < 0.15


@pytest.mark.usefixtures("small")
def test_non_stream_answer_for_a_landscape_15s_alias(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="sora_video2-landscape-15s", messages=ask("waves"))
    content = answer.choices[0].message.content or ""
    link = LINK.search(content)
    assert link and answer.choices[0].finish_reason == "stop" and answer.object == "chat.completion"
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    info = video_info(httpx.get(link[1]).content)
    assert info.size == (128, 72) and abs(info.frames - 150) <= 1 and abs(info.seconds - 15) < 0.15


@pytest.mark.usefixtures("small")
def test_reasoning_style_like_sora2api(http: httpx.Client, simulator: Simulator) -> None:
    configure(http, video_step_seconds=0.05, video_max_side=128, video_chat_style="reasoning")
    got = events(simulator, {"model": "sora_video2", "stream": True, "messages": ask("a red kite")})
    assert got[-1] == "[DONE]"
    chunks = [c for c in got if isinstance(c, dict)]
    thinking = "".join(c["choices"][0]["delta"]["reasoning_content"] or "" for c in chunks)
    progress = [int(n) for n in re.findall(r"\*\*Video Generation Progress\*\*: (\d+)%", thinking)]
    assert len(set(progress)) >= 3 and progress == sorted(progress)
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] == "STOP" and last["native_finish_reason"] == "STOP"
    assert all(c["choices"][0]["delta"]["content"] is None for c in chunks[:-1])
    url = re.fullmatch(r"```html\n<video src='([^']+)' controls></video>\n```", last["delta"]["content"])
    assert url and url[1].endswith(".mp4")
    assert video_info(httpx.get(url[1]).content).size == (72, 128)


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("given_as", ["data_uri", "simulator_link"])
def test_image_to_video_starts_from_the_image(given_as: str, sdk: openai.OpenAI) -> None:
    if given_as == "data_uri":
        png = quadrants_png((72, 128))
        image = "data:image/png;base64," + base64.b64encode(png).decode()
    else:  # a link to an image this simulator made (what a gateway may pass on)
        image = sdk.images.generate(model="dall-e-2", prompt="a flag", size="256x256").data[0].url or ""
        png = httpx.get(image).content
    answer = sdk.chat.completions.create(model="sora_video2", messages=ask("the flag waves", image))  # type: ignore[arg-type]
    link = LINK.search(answer.choices[0].message.content or "")
    assert link
    mp4 = httpx.get(link[1]).content
    with Image.open(io.BytesIO(png)) as img:
        source = np.asarray(ImageOps.fit(img.convert("RGB"), (72, 128)))
    first, later = video_frame(mp4, 0), video_frame(mp4, 99)
    # Outside the watermark, the first frame is the image.
    left, top, right, bottom = watermark_box(72, 128)
    keep = np.ones(source.shape[:2], dtype=bool)
    keep[top:bottom, left:right] = False
    assert mean_abs_diff(first[keep], source[keep]) < 8
    assert mean_abs_diff(later[keep], source[keep]) > 20


@pytest.mark.usefixtures("small")
def test_bad_images_are_refused(sdk: openai.OpenAI, simulator: Simulator) -> None:
    for image in ("data:image/png;base64,AAAA", f"{simulator.url}/files/{'0' * 32}.png"):
        with pytest.raises(openai.BadRequestError) as bad:
            sdk.chat.completions.create(model="sora_video2", messages=ask("x", image))  # type: ignore[arg-type]
        assert bad.value.body["param"] == "messages", image  # type: ignore[index]
    # A link elsewhere is never fetched: the video comes from the text alone.
    answer = sdk.chat.completions.create(
        model="sora_video2", messages=ask("x", "https://example.com/cat.png")
    )  # type: ignore[arg-type]
    assert LINK.search(answer.choices[0].message.content or "")


@pytest.mark.usefixtures("small")
def test_failure_in_both_styles_and_without_stream(
    http: httpx.Client, sdk: openai.OpenAI, simulator: Simulator
) -> None:
    body = {"model": "sora_video2", "stream": True, "messages": ask("a storm --sim-fail")}
    got = events(simulator, body)
    assert got[-1] == "[DONE]" and "error" in got[-2]
    assert got[-2]["error"]["code"] == "video_generation_failed"
    assert "> ❌ Video generation failed" in got[-3]["choices"][0]["delta"]["content"]
    assert not any(isinstance(c, dict) and c.get("choices") and c["choices"][0]["finish_reason"] for c in got)
    with pytest.raises(openai.APIError):  # the SDK raises on the error event
        list(sdk.chat.completions.create(model="sora_video2", messages=ask("--sim-moderate"), stream=True))  # type: ignore[call-overload]
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.chat.completions.create(model="sora_video2", messages=ask("--sim-moderate"))
    assert failed.value.body["code"] == "moderation_blocked"  # type: ignore[index]
    configure(http, video_step_seconds=0.05, video_max_side=128, video_chat_style="reasoning")
    got = events(simulator, body)
    assert got[-2]["error"]["type"] == "server_error" and got[-1] == "[DONE]"


@pytest.mark.usefixtures("small")
def test_a_stuck_task_keeps_the_stream_alive_until_the_client_leaves(simulator: Simulator) -> None:
    body = {"model": "sora_video2", "stream": True, "messages": ask("never --sim-stuck")}
    seen: list[str] = []
    with httpx.stream(
        "POST", simulator.url + "/v1/chat/completions", json=body, headers=simulator.headers, timeout=30
    ) as r:
        for line in r.iter_lines():
            seen.append(line)
            if line.startswith(":"):
                break  # a keep-alive: nothing happened for two seconds
    progress = [int(n) for n in re.findall(r"Progress (\d+)%", "".join(seen))]
    assert progress[-1] == 50 and not any("click here" in line for line in seen)
    # Without streaming there is no answer at all until the client gives up.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            simulator.url + "/v1/chat/completions",
            json={**body, "stream": False},
            headers=simulator.headers,
            timeout=1.0,
        )

    def last(stream: bool) -> str:
        mine = [e for e in simulator.events() if e["model"] == "sora_video2" and e["stream"] is stream]
        return str(mine[-1]["outcome"]) if mine else ""

    wait_until(lambda: last(True) == "disconnected" and last(False) == "disconnected")


@pytest.mark.usefixtures("small")
def test_stream_faults(simulator: Simulator) -> None:
    body = {"model": "sora_video2", "stream": True, "messages": ask("cut")}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            simulator.url + "/v1/chat/completions",
            json=body,
            headers={"x-sim-fault": "truncate=3", **simulator.headers},
        ) as r,
    ):
        for _ in r.iter_lines():
            pass
    r = httpx.post(
        simulator.url + "/v1/chat/completions",
        json=body,
        headers={"x-sim-fault": "status=502", **simulator.headers},
    )
    assert r.status_code == 502 and r.json()["error"]["type"] == "server_error"


@pytest.mark.usefixtures("small")
def test_remover_paints_out_the_watermark(sdk: openai.OpenAI) -> None:
    made = sdk.chat.completions.create(model="sora_video2-landscape", messages=ask("a fox runs"))
    original_link = LINK.search(made.choices[0].message.content or "")
    assert original_link
    answer = sdk.chat.completions.create(
        model="sora_remover", messages=ask(f"remove the watermark: {original_link[1]}")
    )
    content = answer.choices[0].message.content or ""
    cleaned_link = LINK.search(content)
    assert cleaned_link and "watermark removed successfully" in content
    original, cleaned = httpx.get(original_link[1]).content, httpx.get(cleaned_link[1]).content
    before, after = video_info(original), video_info(cleaned)
    assert after.size == before.size == (128, 72) and after.frames == before.frames
    assert after.audio_codec == "aac" and abs(after.audio_seconds - before.audio_seconds) < 0.05
    left, top, right, bottom = watermark_box(128, 72)
    stamp_before = video_frame(original, 50)[top:bottom, left:right].astype(float)
    stamp_after = video_frame(cleaned, 50)[top:bottom, left:right].astype(float)
    # The semi-transparent white mark brightens its box; painted out, the box is one colour (the
    # spread of each channel inside it).
    assert stamp_before.mean() > stamp_after.mean() + 8, (stamp_before.mean(), stamp_after.mean())
    assert stamp_after.std(axis=(0, 1)).max() < 10
    outside = np.ones((72, 128), dtype=bool)
    outside[top:bottom, left:right] = False
    assert mean_abs_diff(video_frame(original, 50)[outside], video_frame(cleaned, 50)[outside]) < 4


@pytest.mark.usefixtures("small")
def test_remover_with_a_share_link_or_nothing(sdk: openai.OpenAI, simulator: Simulator) -> None:
    share = "https://sora.chatgpt.com/p/s_68e3a06dcd888191b150971da152c1f5"
    got = events(simulator, {"model": "sora_remover", "stream": True, "messages": ask(share)})
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in got if isinstance(c, dict))
    assert share in text  # the order block names the link
    link = LINK.search(text.rstrip())
    assert link and video_info(httpx.get(link[1]).content).size == (72, 128)
    with pytest.raises(openai.BadRequestError) as nothing:
        sdk.chat.completions.create(model="sora_remover", messages=ask("please clean my video"))
    assert nothing.value.body["param"] == "messages"  # type: ignore[index]
