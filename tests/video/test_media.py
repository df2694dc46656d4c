"""A finished video's files as clients fetch them: byte ranges (206 with exactly those bytes, 416
outside the file, several at once), ETag and If-None-Match (304), If-Range, HEAD, content types
and caching headers, on `/v1/videos/{id}/content` and `/media/<name>` alike; and the streaming
path for stores without local files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aitre.api.media import serve
from aitre.errors import ApiError
from aitre.media.store import LocalMediaStore, MediaInfo
from tests.support.processes import Gateway
from tests.video.kit import Videos

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@pytest.fixture(scope="module")
def finished(gw: Gateway) -> tuple[Videos, str, bytes]:
    from tests.video.kit import new_user

    owner = Videos(gw, new_user(gw, "5"))
    video = owner.made(prompt="a ranged river", seconds="8")
    return owner, video.id, owner.sdk.videos.download_content(video.id).read()


def test_ranges_of_a_video_download(finished: tuple[Videos, str, bytes]) -> None:
    owner, video_id, whole = finished
    path = f"/v1/videos/{video_id}/content"
    size = len(whole)
    assert size > 1000
    for asked, want in (
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, size - 1)),
        ("bytes=-50", (size - 50, size - 1)),
        (f"bytes=10-{size + 500}", (10, size - 1)),
    ):
        got = owner.http("GET", path, headers={"Range": asked})
        assert got.status_code == 206, (asked, got.status_code)
        assert got.headers["content-range"] == f"bytes {want[0]}-{want[1]}/{size}", asked
        assert got.content == whole[want[0] : want[1] + 1], asked
        assert got.headers["content-type"] == "video/mp4"
    outside = owner.http("GET", path, headers={"Range": f"bytes={size}-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"
    several = owner.http("GET", path, headers={"Range": "bytes=0-9,20-29"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert whole[0:10] in several.content and whole[20:30] in several.content
    plain = owner.http("GET", path)
    assert plain.status_code == 200 and plain.content == whole
    assert plain.headers["accept-ranges"] == "bytes" and plain.headers["content-length"] == str(size)
    assert plain.headers["cache-control"] == "private, max-age=86400"


def test_etag_if_none_match_if_range_and_head(finished: tuple[Videos, str, bytes]) -> None:
    owner, video_id, whole = finished
    path = f"/v1/videos/{video_id}/content"
    first = owner.http("GET", path)
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and first.headers["last-modified"]
    same = owner.http("GET", path, headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    listed = owner.http("GET", path, headers={"If-None-Match": f'"other", W/{tag}'})
    assert listed.status_code == 304
    changed = owner.http("GET", path, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == whole
    stale = owner.http("GET", path, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == whole
    fresh = owner.http("GET", path, headers={"Range": "bytes=0-9", "If-Range": tag})
    assert fresh.status_code == 206 and fresh.content == whole[:10]
    head = owner.http("HEAD", path)
    assert (
        head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(whole))
    )
    assert head.headers["etag"] == tag


def test_media_links_serve_the_same_files_publicly(gw: Gateway, finished: tuple[Videos, str, bytes]) -> None:
    owner, video_id, whole = finished
    (row,) = gw.sql("SELECT media FROM tasks WHERE id = ?", (video_id,))
    media = json.loads(row["media"])
    assert [m["content_type"] for m in media] == ["video/mp4", "image/webp", "image/jpeg"]
    video = httpx.get(f"{gw.url}/media/{media[0]['name']}")  # no key: the name is the capability
    assert video.status_code == 200 and video.content == whole
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["cache-control"] == "public, max-age=31536000, immutable"
    part = httpx.get(f"{gw.url}/media/{media[0]['name']}", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == whole[5:15]
    again = httpx.get(f"{gw.url}/media/{media[0]['name']}", headers={"If-None-Match": video.headers["etag"]})
    assert again.status_code == 304
    for item in media[1:]:
        got = httpx.get(f"{gw.url}/media/{item['name']}")
        assert got.status_code == 200 and got.headers["content-type"] == item["content_type"]
        assert len(got.content) == item["size"]
    image = httpx.post(
        f"{gw.url}/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "a png"},
        headers=owner.auth,
        timeout=60,
    )
    link = image.json()["data"][0]["url"]
    assert httpx.get(link).headers["content-type"] == "image/png"
    for bad in ("../aitre.db", "x.png", "AAAAAAAAAAAAAAAAAAAAAA.png", "%2e%2e%2fsecret.key"):
        assert httpx.get(f"{gw.url}/media/{bad}").status_code == 404, bad


class _StreamOnly:
    """A store whose files are not local (as an object store's): served through `open`."""

    def __init__(self, inner: LocalMediaStore) -> None:
        self.inner = inner

    def locate(self, name: str) -> None:
        return None

    async def stat(self, name: str) -> MediaInfo | None:
        return await self.inner.stat(name)

    async def open(self, name: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes] | None:
        return await self.inner.open(name, start, end)

    async def presigned(self, name: str) -> str | None:
        return None  # streamed through the gateway, not redirected


async def test_a_store_without_local_files_streams_ranges(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path, "http://x")
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    kept = await store.save(data)
    streaming: Any = _StreamOnly(store)

    async def route(request: Request) -> Response:
        try:
            return await serve(request, streaming, request.path_params["name"])
        except ApiError as exc:  # as the gateway's front door answers it
            return exc.to_response()

    app = Starlette(routes=[Route("/m/{name}", route, methods=["GET", "HEAD"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        whole = await http.get(f"/m/{kept.name}")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
        part = await http.get(f"/m/{kept.name}", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = await http.get(f"/m/{kept.name}", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == data[-10:]
        several = await http.get(f"/m/{kept.name}", headers={"Range": "bytes=0-1,5-6"})
        assert several.status_code == 200 and several.content == data  # refused: the whole file
        outside = await http.get(f"/m/{kept.name}", headers={"Range": f"bytes={len(data)}-"})
        assert outside.status_code == 416
        cached = await http.get(f"/m/{kept.name}", headers={"If-None-Match": whole.headers["etag"]})
        assert cached.status_code == 304 and cached.content == b""
        head = await http.head(f"/m/{kept.name}", headers={"Range": "bytes=0-9"})
        assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""
        missing = await http.get("/m/AAAAAAAAAAAAAAAAAAAAAA.mp4")
        assert missing.status_code == 404


def test_files_the_retention_removed_are_gone(gw: Gateway, user: Videos) -> None:
    video = user.made(prompt="soon swept away")
    (row,) = gw.sql("SELECT media FROM tasks WHERE id = ?", (video.id,))
    store = LocalMediaStore(gw.data_dir / "media", gw.url)
    for item in json.loads(row["media"]):  # as the retention sweep removes them
        path = store.locate(item["name"])
        assert path is not None
        path.unlink()
    gone = user.http("GET", f"/v1/videos/{video.id}/content")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "video_expired"
    assert user.sdk.videos.retrieve(video.id).status == "completed"  # the video itself is still listed
