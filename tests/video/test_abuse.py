"""What a hostile or careless client gets from the video API, always in OpenAI's error format:
no key or a wrong one (401), another user's videos (404, exactly as for none), prompts, durations,
sizes and uploads out of bounds (400 / 413), ids with hostile characters, references that are not
images or point inside the gateway's network, more open videos than allowed (429); and nothing
is charged or stored for any of them."""

from __future__ import annotations

import io
import wave

import httpx
import pytest

from tests.billing.helpers import balance, consistent
from tests.support.processes import Gateway
from tests.video.kit import Videos, new_user

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
FAKE_ID = "video_" + "0" * 32


def _error(resp: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


def _routes(video_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("POST", "/v1/videos", {"json": {"prompt": "x"}}),
        ("GET", "/v1/videos", {}),
        ("GET", f"/v1/videos/{video_id}", {}),
        ("DELETE", f"/v1/videos/{video_id}", {}),
        ("GET", f"/v1/videos/{video_id}/content", {}),
        ("POST", f"/v1/videos/{video_id}/remix", {"json": {"prompt": "x"}}),
    ]


def test_no_key_or_a_wrong_key_is_401_everywhere(gw: Gateway, user: Videos) -> None:
    video = user.made(prompt="a guarded clip")
    for method, path, kw in _routes(video.id):
        for headers in (
            {},
            {"Authorization": "Bearer sk-wrong-key-0000000000"},
            {"Authorization": "Basic x"},
        ):
            resp = httpx.request(method, gw.url + path, headers=headers, timeout=30, **kw)
            _error(resp, 401)


def test_another_users_videos_are_not_there(gw: Gateway, user: Videos) -> None:
    video = user.made(prompt="mine alone")
    other = Videos(gw, new_user(gw, "5"))
    start = balance(gw, other.username)
    for method, path, kw in _routes(video.id)[2:]:
        _error(other.http(method, path, **kw), 404, "video_not_found")
        _error(other.http(method, path.replace(video.id, FAKE_ID), **kw), 404, "video_not_found")
    _error(other.http("GET", f"/v1/videos?after={video.id}"), 400, param="after")
    assert video.id not in [v["id"] for v in other.http("GET", "/v1/videos?limit=100").json()["data"]]
    assert user.sdk.videos.retrieve(video.id).status == "completed"  # untouched by the attempts
    assert balance(gw, other.username) == start


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x" * 32_001}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "a\x00b"}, "prompt"),
        ({"prompt": "x", "seconds": "5"}, "seconds"),
        ({"prompt": "x", "seconds": 4.5}, "seconds"),
        ({"prompt": "x", "seconds": "-4"}, "seconds"),
        ({"prompt": "x", "seconds": "99999999999999999999"}, "seconds"),
        ({"prompt": "x", "model": "veo-3", "seconds": "\u00b2"}, "seconds"),
        ({"prompt": "x", "model": "veo-3", "seconds": "9" * 5000}, "seconds"),
        ({"prompt": "x", "size": "1024x1024"}, "size"),
        ({"prompt": "x", "size": "1792x1024"}, "size"),  # sora-2-pro only
        ({"prompt": "x", "size": "720X1280"}, "size"),
        ({"prompt": "x", "size": ["720x1280"]}, "size"),
        ({"prompt": "x", "model": "m" * 129}, "model"),
        ({"prompt": "x", "model": "sora\n2"}, "model"),
        ({"prompt": "x", "input_reference": {"file_id": "file-123"}}, "input_reference"),
        ({"prompt": "x", "input_reference": "ftp://example.com/a.png"}, "input_reference"),
        ({"prompt": "x", "input_reference": "http://127.0.0.1:1/a.png"}, "input_reference"),
        ({"prompt": "x", "input_reference": "http://169.254.169.254/latest/meta-data"}, "input_reference"),
        ({"prompt": "x", "input_reference": "data:image/png;base64,not base64!"}, "input_reference"),
        ({"prompt": "x", "input_reference": "data:text/plain;base64,aGVsbG8="}, "input_reference"),
        ({"prompt": "x", "extra": {"nested": True}}, "extra"),
        ({"prompt": "x", "style": "a\x00b"}, "style"),
        ({"prompt": "x", "style": "s" * 4097}, "style"),
    ],
)
def test_bad_creates_are_400_and_cost_nothing(gw: Gateway, user: Videos, body: dict, param: str) -> None:
    start = balance(gw, user.username)
    _error(user.http("POST", "/v1/videos", json=body), 400, param=param)
    assert balance(gw, user.username) == start


def test_bad_bodies_models_and_lists(gw: Gateway, user: Videos) -> None:
    _error(
        user.http("POST", "/v1/videos", content=b"{not json", headers={"Content-Type": "application/json"}),
        400,
    )
    _error(user.http("POST", "/v1/videos", json=["prompt"]), 400)
    _error(user.http("POST", "/v1/videos", content=b'{"prompt":"a","prompt":"b"}'), 400, "duplicate_key")
    _error(
        user.http("POST", "/v1/videos", json={"prompt": "x", "model": "no-such-video-model"}),
        404,
        "model_not_found",
    )
    _error(
        user.http("POST", "/v1/videos", json={"prompt": "x", "model": "gpt-4o-mini"}), 400, "model_not_priced"
    )
    many = {"prompt": "x", **{f"f{i}": i for i in range(17)}}
    _error(user.http("POST", "/v1/videos", json=many), 400)
    for query, param in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=%C2%B2", "limit"),  # a superscript two: a digit to Python, not a number
        ("limit=" + "9" * 5000, "limit"),
        ("order=sideways", "order"),
        ("after=..%2F..%2Fetc", "after"),
        (f"after={FAKE_ID}", "after"),
    ):
        _error(user.http("GET", f"/v1/videos?{query}"), 400, param=param)
    video = user.made(prompt="one variant too many")
    _error(user.http("GET", f"/v1/videos/{video.id}/content?variant=source"), 400, param="variant")
    _error(user.http("POST", f"/v1/videos/{video.id}/remix", json={"prompt": ""}), 400, param="prompt")
    _error(
        user.http("POST", f"/v1/videos/{video.id}/remix", json={"prompt": "x" * 32_001}), 400, param="prompt"
    )


def test_hostile_ids_are_404(user: Videos) -> None:
    for raw in (
        "..%2F..%2Fdata%2Faitre.db",
        "../../data/aitre.db",
        "video_%00" + "0" * 31,
        "video_" + "A" * 32,
        "video_" + "0" * 33,
        "%E2%80%AEvideo_" + "0" * 32,
        "video_" + "0" * 32 + "%2F..",
        "x" * 5000,
        "' OR 1=1 --",
        "%0d%0aSet-Cookie:%20a=b",
    ):
        for method, path in (
            ("GET", f"/v1/videos/{raw}"),
            ("DELETE", f"/v1/videos/{raw}"),
            ("GET", f"/v1/videos/{raw}/content"),
        ):
            resp = user.http(method, path)
            assert resp.status_code in (404, 400), (method, raw, resp.status_code)
            err = _error(resp, resp.status_code)
            assert "set-cookie" not in resp.headers and "\n" not in err["message"]
        _error(user.http("POST", f"/v1/videos/{raw}/remix", json={"prompt": "x"}), 404)


def test_uploads_out_of_bounds(gw: Gateway, user: Videos) -> None:
    start = balance(gw, user.username)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\0" * 1600)
    not_image = {"input_reference": ("a.png", buf.getvalue(), "image/png")}
    _error(
        user.http("POST", "/v1/videos", data={"prompt": "x"}, files=not_image), 400, param="input_reference"
    )
    two = [("input_reference", ("a.png", b"\x89PNG\r\n\x1a\n", "image/png"))] * 2
    _error(user.http("POST", "/v1/videos", data={"prompt": "x"}, files=two), 400)
    other = {"video": ("v.mp4", b"\0\0\0\x18ftypmp42", "video/mp4")}
    _error(user.http("POST", "/v1/videos", data={"prompt": "x"}, files=other), 400)
    # an image larger than the 20 MB a reference may be, in a body the gateway still reads
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (20 * 1024 * 1024)
    files = {"input_reference": ("big.png", big, "image/png")}
    _error(user.http("POST", "/v1/videos", data={"prompt": "x"}, files=files), 413, param="input_reference")
    # a body larger than any create can be: refused before it is read
    huge = b"\x89PNG\r\n\x1a\n" + b"\0" * (40 * 1024 * 1024)
    resp = user.http(
        "POST", "/v1/videos", data={"prompt": "x"}, files={"input_reference": ("h.png", huge, "image/png")}
    )
    _error(resp, 413, "body_too_large")
    _error(user.http("POST", "/v1/videos", data={"prompt": "x" * 32_001}), 400, param="prompt")
    _error(user.http("POST", "/v1/videos", data={"prompt": "x", "seconds": "7"}), 400, param="seconds")
    _error(user.http("POST", "/v1/videos", data={"prompt": "x", "input_reference[file_id]": "f"}), 400)
    assert balance(gw, user.username) == start
    assert not gw.sql(
        "SELECT id FROM tasks WHERE user_id = (SELECT id FROM users WHERE username = ?)", (user.username,)
    )


def test_keys_limited_to_other_models_and_poor_users(gw: Gateway) -> None:
    name, _ = new_user(gw, "5")
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    uid = gw.sql("SELECT id FROM users WHERE username = ?", (name,))[0]["id"]
    limited = httpx.post(
        f"{gw.url}/api/admin/keys", json={"user_id": uid, "allowed_models": ["gpt-4o-mini"]}, headers=admin
    ).json()["key"]
    resp = httpx.post(
        f"{gw.url}/v1/videos",
        json={"prompt": "x"},
        headers={"Authorization": f"Bearer {limited}"},
        timeout=30,
    )
    _error(resp, 403, "model_not_allowed")
    poor = Videos(gw, new_user(gw, quota=1000))  # $0.002: not enough for a 4 s video
    _error(poor.http("POST", "/v1/videos", json={"prompt": "x"}), 402, "insufficient_quota")
    assert balance(gw, poor.username) == 1000 and consistent(gw, poor.username)
    assert not gw.sql(
        "SELECT id FROM tasks WHERE user_id = (SELECT id FROM users WHERE username = ?)", (poor.username,)
    )


def test_open_videos_per_user_are_bounded(gw: Gateway) -> None:
    busy = Videos(gw, new_user(gw, "50"))
    stuck = [busy.http("POST", "/v1/videos", json={"prompt": f"forever {i} --sim-stuck"}) for i in range(20)]
    try:
        assert all(r.status_code == 200 for r in stuck)
        _error(busy.http("POST", "/v1/videos", json={"prompt": "one more"}), 429, "too_many_open_videos")
    finally:
        for r in stuck:
            busy.http("DELETE", f"/v1/videos/{r.json()['id']}")
    ok = busy.http("POST", "/v1/videos", json={"prompt": "room again"})
    assert ok.status_code == 200, ok.text
