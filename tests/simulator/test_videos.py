"""OpenAI's video API on the simulator, through the official SDK's `client.videos` (and plain HTTP
for what the SDK does not send): the task clock, real mp4s, faults, auth."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.simulator.media import image_info, quadrants_png, video_frame, video_info
from tests.support.processes import Simulator

# Every `videos.*` method of the SDK warns that OpenAI will shut the Sora API down.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

DEFAULTS = {
    "video_step_seconds": 0.2,
    "video_any_size": False,
    "video_max_side": 0,
    "video_chat_style": "quote",
}


def configure(http: httpx.Client, **settings: Any) -> None:
    r = http.post("/_sim/config", json={**DEFAULTS, **settings})
    assert r.status_code == 200, r.text


@pytest.fixture
def fast(http: httpx.Client) -> Iterator[None]:
    """Small sizes allowed, a quick clock; the defaults again afterwards."""
    configure(http, video_step_seconds=0.05, video_any_size=True)
    yield
    configure(http)


def wait_done(sdk: openai.OpenAI, video_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = sdk.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
        time.sleep(0.02)
    raise AssertionError(f"{video_id} did not finish in {timeout}s")


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_multipart_create_polls_to_completed_and_downloads_a_real_mp4(
    http: httpx.Client, sdk: openai.OpenAI
) -> None:
    configure(http, video_step_seconds=0.3, video_any_size=True)
    try:
        video = sdk.videos.create(prompt="a red fox in the snow", size="64x112", seconds="4")  # type: ignore[arg-type]
        assert (video.object, video.status, video.progress, video.model) == ("video", "queued", 0, "sora-2")
        assert (video.size, video.seconds, video.prompt) == ("64x112", "4", "a red fox in the snow")
        assert video.id.startswith("video_") and video.completed_at is None and video.error is None
        seen = []
        while True:
            raw = sdk.videos.with_raw_response.retrieve(video.id)
            now = raw.parse()
            seen.append((now.status, now.progress, raw.headers.get("openai-poll-after-ms")))
            if now.status == "completed":
                break
            assert now.status in ("queued", "in_progress"), now
            time.sleep(0.03)
    finally:
        configure(http)
    statuses = [s for s, _, _ in seen]
    assert statuses[-1] == "completed" and seen[-1][1] == 100 and seen[-1][2] is None
    running = [p for s, p, _ in seen if s == "in_progress"]
    assert len(set(running)) >= 2 and running == sorted(running), seen
    assert statuses.index("in_progress") < statuses.index("completed")
    assert all(hint == "300" for s, _, hint in seen if s != "completed")
    assert now.completed_at is not None and now.expires_at == now.completed_at + 3600

    mp4 = sdk.videos.download_content(video.id).read()
    info = video_info(mp4)
    assert info.codec == "h264" and info.size == (64, 112)
    assert abs(info.frames - 40) <= 1 and abs(info.seconds - 4) < 0.15
    assert info.audio_codec == "aac" and abs(info.audio_seconds - 4) < 0.15
    # The same video on a second download, made once.
    assert sdk.videos.download_content(video.id, variant="video").read() == mp4
    thumb = sdk.videos.download_content(video.id, variant="thumbnail")
    assert image_info(thumb.read())[:2] == ("WEBP", (64, 112))
    sheet = sdk.videos.download_content(video.id, variant="spritesheet").read()
    fmt, (w, h), _ = image_info(sheet)
    assert fmt == "JPEG" and (w, h) == (4 * 64, 112)  # a tile per second


@pytest.mark.usefixtures("fast")
def test_sizes_models_and_json_create(sdk: openai.OpenAI, simulator: Simulator) -> None:
    r = httpx.post(
        simulator.url + "/v1/videos",
        json={"prompt": "a lighthouse", "model": "sora-2-pro", "seconds": 8, "size": "96x64"},
        headers=simulator.headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["model"], r.json()["seconds"], r.json()["size"]) == ("sora-2-pro", "8", "96x64")
    video = wait_done(sdk, r.json()["id"])
    info = video_info(sdk.videos.download_content(video.id).read())
    assert info.size == (96, 64) and abs(info.frames - 80) <= 1 and abs(info.audio_seconds - 8) < 0.15


def test_sizes_follow_openai_unless_the_simulator_is_told_otherwise(
    http: httpx.Client, sdk: openai.OpenAI
) -> None:
    configure(http, video_step_seconds=0, video_max_side=64)
    try:
        portrait = wait_done(sdk, sdk.videos.create(prompt="tall", size="720x1280").id)
        pro = sdk.videos.create(prompt="wide", model="sora-2-pro", size="1792x1024", seconds="4")
        with pytest.raises(openai.BadRequestError) as small:
            sdk.videos.create(prompt="x", size="64x112")  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError) as pro_only:
            sdk.videos.create(prompt="x", size="1024x1792")
    finally:
        configure(http)
    assert small.value.body["param"] == "size"  # type: ignore[index]
    assert "sora-2-pro" in pro_only.value.body["message"]  # type: ignore[index]
    # video_max_side shrinks what is drawn; the task still reports the size asked for.
    assert portrait.size == "720x1280" and pro.size == "1792x1024"
    assert video_info(sdk.videos.download_content(portrait.id).read()).size == (36, 64)


@pytest.mark.usefixtures("fast")
@pytest.mark.parametrize("how", ["upload", "json_data_url", "multipart_image_url"])
def test_image_to_video_starts_from_the_input_image(
    how: str, sdk: openai.OpenAI, simulator: Simulator
) -> None:
    png = quadrants_png((64, 96))
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    if how == "upload":
        video_id = sdk.videos.create(
            prompt="the flag waves",
            size="64x96",
            input_reference=("flag.png", png, "image/png"),  # type: ignore[arg-type]
        ).id
    elif how == "json_data_url":
        body = {"prompt": "the flag waves", "size": "64x96", "input_reference": {"image_url": data_url}}
        video_id = httpx.post(simulator.url + "/v1/videos", json=body, headers=simulator.headers).json()["id"]
    else:  # as clones of the API accept it (the SDK cannot send a dict in a multipart body)
        fields = {"prompt": "the flag waves", "size": "64x96", "input_reference[image_url]": data_url}
        form = [(name, (None, value)) for name, value in fields.items()]
        video_id = httpx.post(simulator.url + "/v1/videos", files=form, headers=simulator.headers).json()[
            "id"
        ]
    wait_done(sdk, video_id)
    mp4 = sdk.videos.download_content(video_id).read()
    source = _pixels(png)
    first, later = video_frame(mp4, 0), video_frame(mp4, 39)
    assert mean_abs_diff(first, source) < 8
    assert mean_abs_diff(later, source) > 20  # it moves on from there


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


@pytest.mark.usefixtures("fast")
def test_list_pages_with_after_limit_and_order(sdk: openai.OpenAI) -> None:
    ids = [sdk.videos.create(prompt=f"clip {i}", size="32x32").id for i in range(3)]  # type: ignore[arg-type]
    newest = sdk.videos.list(limit=3)
    assert [v.id for v in newest.data] == ids[::-1] and newest.has_more is not None
    page = sdk.videos.list(limit=1, order="asc", after=ids[0])
    assert [v.id for v in page.data] == [ids[1]] and page.has_more is True and page.last_id == ids[1]
    following = page.get_next_page()
    assert [v.id for v in following.data] == [ids[2]]
    assert sdk.videos.list(after=ids[2], order="asc").data == []
    with pytest.raises(openai.BadRequestError):
        sdk.videos.list(limit=0)
    with pytest.raises(openai.BadRequestError):
        sdk.videos.list(after="video_nope")


@pytest.mark.usefixtures("fast")
def test_remix_and_delete(sdk: openai.OpenAI) -> None:
    source = sdk.videos.create(prompt="a boat at dawn", size="48x32", seconds="4")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        sdk.videos.remix(source.id, prompt="too early")
    wait_done(sdk, source.id)
    remix = sdk.videos.remix(source.id, prompt="the same boat at night")
    assert remix.remixed_from_video_id == source.id and remix.status == "queued"
    assert (remix.size, remix.seconds, remix.model) == ("48x32", "4", "sora-2")
    wait_done(sdk, remix.id)
    original = sdk.videos.download_content(source.id).read()
    remixed = sdk.videos.download_content(remix.id).read()
    assert video_info(remixed).size == (48, 32) and remixed != original

    deleted = sdk.videos.delete(source.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (source.id, "video.deleted", True)
    for call in (
        lambda: sdk.videos.retrieve(source.id),
        lambda: sdk.videos.download_content(source.id),
        lambda: sdk.videos.delete(source.id),
    ):
        with pytest.raises(openai.NotFoundError) as gone:
            call()
        assert gone.value.body["code"] == "video_not_found"  # type: ignore[index]


@pytest.mark.usefixtures("fast")
def test_bad_requests(sdk: openai.OpenAI, simulator: Simulator) -> None:
    with pytest.raises(openai.NotFoundError) as model:
        sdk.videos.create(prompt="x", model="sora-9", size="32x32")  # type: ignore[arg-type]
    assert model.value.body["code"] == "model_not_found"  # type: ignore[index]
    for kwargs, param in (
        ({"prompt": "x", "seconds": "5"}, "seconds"),
        ({"prompt": " "}, "prompt"),
        ({"prompt": "x", "size": "33x32"}, "size"),
        ({"prompt": "x", "input_reference": ("x.png", b"not an image", "image/png")}, "input_reference"),
    ):
        with pytest.raises(openai.BadRequestError) as bad:
            sdk.videos.create(**kwargs)  # type: ignore[arg-type]
        assert bad.value.body["param"] == param, kwargs  # type: ignore[index]
    r = httpx.post(
        simulator.url + "/v1/videos",
        content=b"{not json",
        headers={"content-type": "application/json", **simulator.headers},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    waiting = sdk.videos.create(prompt="slow --sim-stuck", size="32x32")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as early:
        sdk.videos.download_content(waiting.id)
    assert early.value.body["code"] == "video_not_ready"  # type: ignore[index]
    r = httpx.get(
        f"{simulator.url}/v1/videos/{waiting.id}/content",
        params={"variant": "poster"},
        headers=simulator.headers,
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "variant"


@pytest.mark.usefixtures("fast")
def test_failed_and_stuck_tasks(sdk: openai.OpenAI) -> None:
    failed = wait_done(sdk, sdk.videos.create(prompt="boom --sim-fail", size="32x32").id)  # type: ignore[arg-type]
    assert failed.status == "failed" and failed.progress == 50 and failed.completed_at is None
    assert (
        failed.error is not None and failed.error.code == "video_generation_failed" and failed.error.message
    )
    with pytest.raises(openai.BadRequestError):
        sdk.videos.download_content(failed.id)
    moderated = wait_done(sdk, sdk.videos.create(prompt="--sim-moderate", size="32x32").id)  # type: ignore[arg-type]
    assert moderated.status == "failed" and moderated.error.code == "moderation_blocked"
    stuck = sdk.videos.create(prompt="forever --sim-stuck", size="32x32")  # type: ignore[arg-type]
    time.sleep(0.5)  # twice the time a task takes with this clock
    for _ in range(3):
        raw = sdk.videos.with_raw_response.retrieve(stuck.id)
        assert (raw.parse().status, raw.parse().progress) == ("in_progress", 50)
        assert raw.headers["openai-poll-after-ms"] == "50"


@pytest.mark.usefixtures("fast")
def test_http_faults(simulator: Simulator, sdk: openai.OpenAI) -> None:
    flaky_url = simulator.url + "/f/status=503/v1"
    with (
        openai.OpenAI(base_url=flaky_url, api_key=simulator.key, max_retries=0) as flaky,
        pytest.raises(openai.InternalServerError),
    ):
        flaky.videos.create(prompt="x", size="32x32")  # type: ignore[arg-type]
    video = wait_done(sdk, sdk.videos.create(prompt="cut me", size="32x32").id)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        sdk.videos.retrieve(video.id, extra_headers={"x-sim-fault": "status=429"})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{simulator.url}/f/truncate=0/v1/videos/{video.id}/content", headers=simulator.headers)
    simulator.set_faults({"spec": "bad_json", "path": "/v1/videos/", "times": 1})
    try:
        r = httpx.get(f"{simulator.url}/v1/videos/{video.id}", headers=simulator.headers)
        assert r.status_code == 200
        with pytest.raises(ValueError):
            r.json()
    finally:
        simulator.reset()
    assert sdk.videos.retrieve(video.id).status == "completed"


def test_the_key_is_checked(tmp_path_factory: pytest.TempPathFactory) -> None:
    keyed = Simulator(tmp_path_factory.mktemp("keyed-video-sim"), "sim-secret").start()
    try:
        for key in (None, "wrong"):
            headers = {"authorization": f"Bearer {key}"} if key else {}
            for method, path in (
                ("POST", "/v1/videos"),
                ("GET", "/v1/videos"),
                ("GET", "/v1/videos/video_x"),
            ):
                r = httpx.request(method, keyed.url + path, headers=headers, json={"prompt": "x"})
                assert r.status_code == 401, (method, path, r.text)
                assert r.json()["error"]["code"] == "invalid_api_key"
            chat = {"model": "sora_video2", "messages": [{"role": "user", "content": "x"}]}
            r = httpx.post(keyed.url + "/v1/chat/completions", headers=headers, json=chat)
            assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
        with openai.OpenAI(base_url=keyed.url + "/v1", api_key="sim-secret", max_retries=0) as sdk:
            assert sdk.videos.create(prompt="let me in").status == "queued"
    finally:
        keyed.stop()


def test_config_rejects_bad_video_settings(http: httpx.Client) -> None:
    for bad in (
        {"video_step_seconds": -1},
        {"video_step_seconds": "fast"},
        {"video_any_size": "yes"},
        {"video_max_side": 8},
        {"video_chat_style": "shouty"},
    ):
        r = http.post("/_sim/config", json=bad)
        assert r.status_code == 400 and r.json()["error"]["message"], bad
    r = http.post("/_sim/config", json={})
    assert {k: r.json()[k] for k in DEFAULTS} == DEFAULTS
