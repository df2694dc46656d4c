"""OpenAI's SDK, unchanged, against aitre's video API on the built-in simulator channel: create (as
the SDK sends it: multipart), retrieve, create_and_poll, list with pagination, download the video
(decoded: the size and length asked for), its thumbnail and spritesheet, remix, delete; JSON
creates and reference images (upload, data URL), the reference reaching the upstream."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.simulator.media import image_info, quadrants_png, video_frame, video_info
from tests.support.processes import Gateway
from tests.video.kit import Videos, sim_config

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def test_create_poll_download_decodes_at_the_asked_size_and_length(gw: Gateway, user: Videos) -> None:
    sim_config(gw, video_max_side=0)  # render at the real size for this one
    try:
        created = user.sdk.videos.create(prompt="a red fox in the snow", size="1280x720", seconds="8")
    finally:
        sim_config(gw)
    assert (created.object, created.status, created.progress, created.model) == (
        "video",
        "queued",
        0,
        "sora-2",
    )
    assert (created.size, created.seconds, created.prompt) == ("1280x720", "8", "a red fox in the snow")
    assert created.id.startswith("video_") and len(created.id) == 38
    assert created.completed_at is None and created.expires_at is None and created.error is None
    video = user.sdk.videos.poll(created.id)
    assert (video.status, video.progress) == ("completed", 100)
    assert video.completed_at is not None and video.completed_at >= video.created_at
    # expires_at follows the media retention (30 days by default)
    assert video.expires_at is not None and video.expires_at - video.created_at == pytest.approx(
        30 * 86400, abs=5
    )

    mp4 = user.sdk.videos.download_content(video.id).read()
    info = video_info(mp4)
    assert info.codec == "h264" and info.size == (1280, 720)
    assert info.seconds == pytest.approx(8, abs=0.2) and info.frames >= 70
    assert info.audio_codec == "aac"
    thumb = user.sdk.videos.download_content(video.id, variant="thumbnail").read()
    assert image_info(thumb)[0] == "WEBP"
    sprites = user.sdk.videos.download_content(video.id, variant="spritesheet").read()
    assert image_info(sprites)[0] == "JPEG"
    raw = user.sdk.videos.with_raw_response.download_content(video.id)
    assert raw.headers["content-type"] == "video/mp4" and raw.headers["accept-ranges"] == "bytes"


def test_create_and_poll_and_the_poll_hint(user: Videos) -> None:
    raw = user.sdk.videos.with_raw_response.create(prompt="a hint")
    assert int(raw.headers["openai-poll-after-ms"]) >= 100
    video = user.sdk.videos.create_and_poll(prompt="a cat on a bike", model="sora-2-pro", size="1792x1024")
    assert (video.status, video.model, video.size, video.seconds) == (
        "completed",
        "sora-2-pro",
        "1792x1024",
        "4",
    )
    again = user.sdk.videos.with_raw_response.retrieve(video.id)
    assert "openai-poll-after-ms" not in again.headers and again.parse() == video


def test_list_pages_with_after_limit_and_order(gw: Gateway) -> None:
    from tests.video.kit import new_user

    mine = Videos(gw, new_user(gw, "20"))
    ids = [mine.sdk.videos.create(prompt=f"clip {i}").id for i in range(5)]
    page = mine.sdk.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[::-1][:2] and page.has_more is True
    assert page.last_id == ids[3]
    newest_first = [v.id for v in mine.sdk.videos.list(limit=2)]  # the SDK follows `last_id`
    assert newest_first == ids[::-1]
    oldest_first = [v.id for v in mine.sdk.videos.list(limit=3, order="asc")]
    assert oldest_first == ids
    last = mine.sdk.videos.list(limit=2, after=ids[1])
    assert [v.id for v in last.data] == [ids[0]] and last.has_more is False
    body = mine.http("GET", "/v1/videos?limit=2&order=asc").json()
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
    assert (body["object"], body["first_id"], body["last_id"]) == ("list", ids[0], ids[1])
    # a deleted video leaves the list, but still marks its place for a client paging
    mine.done(ids[2])
    mine.sdk.videos.delete(ids[2])
    assert [v.id for v in mine.sdk.videos.list(limit=10)] == [ids[4], ids[3], ids[1], ids[0]]
    assert [v.id for v in mine.sdk.videos.list(limit=10, after=ids[2]).data] == [ids[1], ids[0]]
    empty = Videos(gw, new_user(gw, "1")).http("GET", "/v1/videos").json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_remix_makes_a_new_video_of_the_source(user: Videos) -> None:
    source = user.made(prompt="a lighthouse at dusk", seconds="4")
    remix = user.sdk.videos.remix(source.id, prompt="the lighthouse at dawn")
    assert remix.id != source.id and remix.remixed_from_video_id == source.id
    assert (remix.model, remix.size, remix.seconds, remix.prompt) == (
        source.model,
        source.size,
        source.seconds,
        "the lighthouse at dawn",
    )
    done = user.done(remix.id)
    assert done.status == "completed" and done.remixed_from_video_id == source.id
    assert video_info(user.sdk.videos.download_content(done.id).read()).frames > 0


def test_delete_removes_the_video_and_its_files(user: Videos) -> None:
    video = user.made(prompt="a short-lived clip")
    content = user.http("GET", f"/v1/videos/{video.id}/content")
    assert content.status_code == 200
    media_names = [r["media"] for r in user.gw.sql("SELECT media FROM tasks WHERE id = ?", (video.id,))]
    deleted = user.sdk.videos.delete(video.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    for method, path in (
        ("GET", f"/v1/videos/{video.id}"),
        ("GET", f"/v1/videos/{video.id}/content"),
        ("DELETE", f"/v1/videos/{video.id}"),
    ):
        gone = user.http(method, path)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "video_not_found", path
    # the files are gone from the media store too; the row stays, for the operator
    assert media_names and all(n for n in media_names)
    import json

    for item in json.loads(media_names[0]):
        assert user.http("GET", f"/media/{item['name']}").status_code == 404
    (row,) = user.gw.sql("SELECT status, deleted_at FROM tasks WHERE id = ?", (video.id,))
    assert row["status"] == "succeeded" and row["deleted_at"] is not None


def test_a_reference_image_upload_reaches_the_upstream(user: Videos) -> None:
    ref = quadrants_png((128, 224))
    video = user.sdk.videos.create(
        prompt="the picture comes alive", size="720x1280", input_reference=("ref.png", ref, "image/png")
    )
    done = user.done(video.id)
    assert done.status == "completed"
    first = video_frame(user.sdk.videos.download_content(video.id).read(), 0)
    h, w, _ = first.shape
    # the first frame is the reference, fitted: its four colours in its four quarters
    corners = [
        first[h // 4, w // 4],
        first[h // 4, 3 * w // 4],
        first[3 * h // 4, w // 4],
        first[3 * h // 4, 3 * w // 4],
    ]
    expected = [(230, 30, 30), (30, 200, 40), (40, 60, 220), (240, 230, 40)]
    for got, want in zip(corners, expected, strict=True):
        assert np.abs(got.astype(int) - np.array(want)).max() < 40, (got, want)


def test_json_create_with_a_data_url_reference(user: Videos) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (72, 128), (20, 20, 230)).save(buf, "JPEG")
    import base64

    data_url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    resp = user.http(
        "POST",
        "/v1/videos",
        json={"model": "sora-2", "prompt": "blue", "seconds": 4, "input_reference": {"image_url": data_url}},
    )
    assert resp.status_code == 200, resp.text
    video = resp.json()
    assert (video["seconds"], video["size"], video["status"]) == ("4", "720x1280", "queued")
    done = user.done(video["id"])
    assert done.status == "completed"
    first = video_frame(user.sdk.videos.download_content(done.id).read(), 0)
    assert first[:, :, 2].mean() > 150 and first[:, :, 0].mean() < 90  # blue, as the reference


def test_video_models_are_listed(user: Videos) -> None:
    ids = {m.id for m in user.sdk.models.list()}
    assert {"sora-2", "sora-2-pro"} <= ids
    # they make videos, not chat answers
    with pytest.raises(Exception) as refused:
        user.sdk.chat.completions.create(model="sora-2", messages=[{"role": "user", "content": "hi"}])
    assert getattr(refused.value, "status_code", 0) in (400, 404)
