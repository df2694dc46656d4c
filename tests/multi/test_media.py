"""Media in an S3 bucket (moto) shared by two instances: a picture stored through one is served
by the other, Range included; with redirects on, an instance answers with a presigned link that
the bucket honours (Range too). Names that are not ours get our 404; a missing bucket stops the
start with a message that names the setting."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.multi.kit import Pair, cluster_env, started_pair
from tests.multi.servers import MotoS3
from tests.support.processes import Gateway, Simulator, channel_spec


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator, s3: MotoS3) -> Iterator[Pair]:
    with started_pair(tmp_path_factory.mktemp("media"), s3, _setup(simulator)) as both:
        yield both


def _setup(simulator: Simulator) -> Callable[[Gateway], None]:
    def setup(gw: Gateway) -> None:
        gw.apply({"channels": [channel_spec("img", f"{simulator.url}/v1", "dall-e-3")]})

    return setup


def _picture(gw: Gateway, key: str) -> str:
    r = httpx.post(
        gw.api + "/images/generations",
        json={"model": "dall-e-3", "prompt": "a lighthouse at dawn", "response_format": "url"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    url = str(r.json()["data"][0]["url"])
    assert url.startswith(gw.url + "/media/"), url
    return url.rsplit("/", 1)[1]


def test_a_picture_stored_through_one_is_served_by_the_other_with_ranges(pair: Pair) -> None:
    _, _, key = pair.new_user("pictures", 10_000_000)
    name = _picture(pair.a, key)
    whole = httpx.get(f"{pair.b.url}/media/{name}", timeout=30)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "image/png"
    assert whole.headers["accept-ranges"] == "bytes"
    assert Image.open(io.BytesIO(whole.content)).size == (1024, 1024)
    data, size = whole.content, len(whole.content)
    assert int(whole.headers["content-length"]) == size
    assert httpx.get(f"{pair.a.url}/media/{name}", timeout=30).content == data

    def ranged(spec: str) -> httpx.Response:
        return httpx.get(f"{pair.b.url}/media/{name}", headers={"Range": spec}, timeout=30)

    part = ranged("bytes=10-99")
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-99/{size}"
    assert part.content == data[10:100]
    tail = ranged("bytes=-100")
    assert (tail.status_code, tail.content) == (206, data[-100:])
    assert tail.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
    rest = ranged(f"bytes={size - 5}-")
    assert (rest.status_code, rest.content) == (206, data[-5:])
    beyond = ranged(f"bytes={size}-{size + 10}")
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    clipped = ranged(f"bytes={size - 3}-{size + 1000}")
    assert (clipped.status_code, clipped.content) == (206, data[-3:])
    several = ranged("bytes=0-1,5-6")  # several ranges: the whole file is a valid answer
    assert (several.status_code, several.content) == (200, data)
    garbage = ranged("bytes=zz-1")
    assert (garbage.status_code, garbage.content) == (200, data)
    again = httpx.get(f"{pair.b.url}/media/{name}", headers={"If-None-Match": whole.headers["etag"]})
    assert again.status_code == 304


HOSTILE = [
    "AAAAAAAAAAAAAAAAAAAAAA.png",  # well-formed, not there
    "..%2F..%2Fetc%2Fpasswd",
    "media%2F..%2Fsecret.png",
    "x" * 5000 + ".png",
    "AAAAAAAAAAAAAAAAAAAAAA.png%00.txt",
    "AAAAAAAAAAAAAAAAAAAAAA.png?X-Amz-Expires=1",
]


def test_names_that_are_not_ours_get_404(pair: Pair) -> None:
    for gw in pair.both:
        for name in HOSTILE:
            r = httpx.get(f"{gw.url}/media/{name}", timeout=30)
            assert r.status_code == 404, (name, r.text)
            assert r.json()["error"]["code"] == "not_found"


def test_redirects_to_a_presigned_link_that_the_bucket_honours(
    pair: Pair, make_gateway: Callable[..., Gateway], s3: MotoS3
) -> None:
    _, _, key = pair.new_user("redirected", 10_000_000)
    name = _picture(pair.a, key)
    data = httpx.get(f"{pair.a.url}/media/{name}", timeout=30).content
    c = make_gateway(**cluster_env(pair.pg_url, s3, AITRE_MEDIA_S3_REDIRECT="true")).start()
    moved = httpx.get(f"{c.url}/media/{name}", timeout=30)
    assert moved.status_code == 302
    link = moved.headers["location"]
    assert link.startswith(f"{s3.url}/{s3.bucket}/media/{name}?") and "X-Amz-Signature=" in link
    assert httpx.get(link, timeout=30).content == data
    part = httpx.get(link, headers={"Range": "bytes=0-15"}, timeout=30)
    assert (part.status_code, part.content) == (206, data[:16])
    # Followed the way a client follows it, Range included.
    followed = httpx.get(f"{c.url}/media/{name}", headers={"Range": "bytes=-7"}, follow_redirects=True)
    assert (followed.status_code, followed.content) == (206, data[-7:])
    assert "X-Amz-Expires=3600" in link  # AITRE_MEDIA_S3_PRESIGN_SECONDS' default
    assert moved.headers["cache-control"] == "no-store"  # a link that expires is not cached
    missing = httpx.get(f"{c.url}/media/AAAAAAAAAAAAAAAAAAAAAA.png", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_missing_bucket_stops_the_start_and_says_why(tmp_path: Path, pg_url: str, s3: MotoS3) -> None:
    env = cluster_env(pg_url, s3, AITRE_MEDIA_S3_BUCKET=f"missing-{uuid.uuid4().hex[:8]}")
    gw = Gateway(tmp_path / "gw", **env)
    with pytest.raises(RuntimeError, match="process exited"):
        gw.start()
    assert "AITRE_MEDIA_S3_BUCKET" in gw.proc.log()
