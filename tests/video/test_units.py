"""The video kind's pieces on their own: request checks, prices, the video object, the upstream's
vocabularies and error messages, and how an interrupted create is looked up."""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image

from aitre.adapters import videos_api, videos_wire
from aitre.billing.prices import ModelPrice
from aitre.channels.model import ChannelInfo
from aitre.errors import ApiError
from aitre.media.store import LocalMediaStore
from aitre.store.models import now_ms
from aitre.tasks.protocol import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUBMITTING,
    SUCCEEDED,
    WAITING,
    LookupUnsupported,
    TaskView,
)
from aitre.video import params, pricing
from aitre.video.render import media_of, renderer, video_object

LIMITS = params.Limits(prompt_chars=100, image_bytes=10_000)


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


async def _no_fetch(url: str, param: str) -> bytes:
    raise AssertionError("nothing to fetch")


async def test_json_requests_take_openai_defaults_and_pass_unknown_fields() -> None:
    got = await params.from_json({"prompt": "a fox", "seed": 7, "style": "noir"}, LIMITS, _no_fetch)
    assert (got.model, got.prompt, got.seconds, got.size) == ("sora-2", "a fox", "4", "720x1280")
    assert got.extra == {"seed": 7, "style": "noir"} and got.input_image is None
    assert (await params.from_json({"prompt": "x", "seconds": 12}, LIMITS, _no_fetch)).seconds == "12"
    pro = await params.from_json(
        {"prompt": "x", "model": "sora-2-pro", "size": "1024x1792"}, LIMITS, _no_fetch
    )
    assert pro.size == "1024x1792"
    # other providers' models: any duration and size within bounds
    other = await params.from_json(
        {"prompt": "x", "model": "veo-3", "seconds": "6", "size": "1920x1080"}, LIMITS, _no_fetch
    )
    assert (other.seconds, other.size) == ("6", "1920x1080")
    for bad in (
        {"seconds": "0"},
        {"seconds": "121"},
        {"size": "8x8"},
        {"size": "5000x100"},
        {"size": "0x100"},
    ):
        with pytest.raises(ApiError) as refused:
            await params.from_json({"prompt": "x", "model": "veo-3", **bad}, LIMITS, _no_fetch)
        assert refused.value.status == 400 and refused.value.param in ("seconds", "size")


async def test_references_by_url_data_url_and_form_field() -> None:
    png = _png()
    seen: list[tuple[str, str]] = []

    async def fetch(url: str, param: str) -> bytes:
        seen.append((url, param))
        return png

    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    by_url = await params.from_json(
        {"prompt": "x", "input_reference": "https://img.example/a.png"}, LIMITS, fetch
    )
    assert by_url.input_image == params.InputImage(png, "image/png")
    by_object = await params.from_json(
        {"prompt": "x", "input_reference": {"image_url": data_url}}, LIMITS, fetch
    )
    assert by_object.input_image is not None
    by_form = await params.from_form(
        {"prompt": "x", "input_reference[image_url]": data_url}, {}, LIMITS, fetch
    )
    assert by_form.input_image is not None
    uploaded = await params.from_form({"prompt": "x"}, {"input_reference": png}, LIMITS, fetch)
    assert uploaded.input_image == params.InputImage(png, "image/png")
    assert seen == [
        ("https://img.example/a.png", "input_reference"),
        (data_url, "input_reference"),
        (data_url, "input_reference"),
    ]
    with pytest.raises(ApiError) as too_big:
        await params.from_form({"prompt": "x"}, {"input_reference": png + b"\0" * 10_000}, LIMITS, fetch)
    assert too_big.value.status == 413


def test_prices_by_seconds_and_size() -> None:
    pro = ModelPrice.parse("sora-2-pro", {"per_second": "0.30", "image_prices": {"1792x1024": "0.50"}})
    assert pricing.usd(pro, 8, "720x1280") == Decimal("2.40")
    assert pricing.usd(pro, 12, "1792x1024") == Decimal("6.00")
    assert pricing.units(pro, 4, "1792x1024", Decimal("1.5"), 500_000) == 1_500_000
    odd = ModelPrice.parse("m", {"per_call": "0.000001", "per_second": "0.0000001"})
    assert pricing.units(odd, 3, "1x1", Decimal(1), 500_000) == 1  # rounded up, never free
    assert pricing.is_video_price(odd) and not pricing.is_video_price(
        ModelPrice.parse("chat", {"input_per_1m": "1"})
    )


def _task(**changes: Any) -> TaskView:
    base = TaskView(
        id="video_" + "a" * 32, kind="video", action="create", model="sora-2", user_id=1, token_id=1,
        group="default", status=QUEUED, progress=0,
        request={"model": "sora-2", "prompt": "p", "seconds": "8", "size": "1280x720", "remix_of": None},
        result={}, media=[], error="", error_code="", channel_id=1, upstream_id=None, submit_key="k",
        attempts=0, hold_id="task_x", reserved=1, cost=0, parent_id=None, notify_hook=None,
        client_state=None, created_at=1_700_000_000_123, started_at=1_700_000_010_000,
        finished_at=None, updated_at=0, deadline_at=0, history=[],
    )  # fmt: skip
    return replace(base, **changes)


def test_the_video_object_for_every_engine_status() -> None:
    def shown(**changes: Any) -> dict[str, Any]:
        return video_object(_task(**changes), 30)

    queued = shown()
    assert (queued["status"], queued["progress"], queued["created_at"]) == ("queued", 0, 1_700_000_000)
    assert (queued["seconds"], queued["size"], queued["prompt"], queued["object"]) == (
        "8",
        "1280x720",
        "p",
        "video",
    )
    assert shown(status=SUBMITTING)["status"] == "queued"
    assert shown(status=RUNNING, progress=40, result={"upstream_status": "queued"})["status"] == "queued"
    running = shown(status=RUNNING, progress=40, result={"upstream_status": "in_progress"})
    assert (running["status"], running["progress"], running["error"]) == ("in_progress", 40, None)
    assert shown(status=WAITING)["status"] == "in_progress"
    done = shown(status=SUCCEEDED, progress=100, finished_at=1_700_000_100_999)
    assert (done["status"], done["progress"], done["completed_at"]) == ("completed", 100, 1_700_000_100)
    assert done["expires_at"] == 1_700_000_010 + 30 * 86400  # from the start: the files are younger
    assert video_object(_task(status=SUCCEEDED), 0)["expires_at"] is None  # kept forever
    upstream = shown(status=FAILED, result={"error": {"code": "moderation_blocked", "message": "no"}})
    assert (
        upstream["error"] == {"code": "moderation_blocked", "message": "no"}
        and upstream["completed_at"] is None
    )
    timed_out = shown(status=FAILED, error="the task did not finish within 1800 s", error_code="task_timeout")
    assert timed_out["error"] == {"code": "task_timeout", "message": "the task did not finish within 1800 s"}
    assert shown(status=CANCELLED, error_code="cancelled")["status"] == "failed"
    by_chat = shown(status=FAILED, finished_at=1_700_000_050_000, error="lost", error_code="upstream_failed",
                    result={"error_code": "upstream_stream_lost"})  # fmt: skip
    assert by_chat["error"] == {"code": "upstream_stream_lost", "message": "lost"}
    assert by_chat["completed_at"] == 1_700_000_050  # ended, though not completed
    remix = shown(request={"prompt": "q", "remix_of": "video_" + "b" * 32})
    assert remix["remixed_from_video_id"] == "video_" + "b" * 32


def test_kept_files_in_their_order_and_the_hooks_link() -> None:
    files = [{"name": f"{n}.x", "content_type": "t", "size": 1} for n in ("v", "t", "s")]
    task = _task(media=files[:2])
    assert media_of(task, "video") == files[0] and media_of(task, "thumbnail") == files[1]
    assert media_of(task, "spritesheet") is None
    store = LocalMediaStore(Path("/nonexistent"), "https://gw.example")
    render = renderer(30)
    assert render(replace(task, status=SUCCEEDED), store)["url"] == "https://gw.example/media/v.x"
    assert render(task, store)["url"] is None  # not completed: no link yet
    assert "url" not in video_object(task, 30)  # the video API's answers stay OpenAI's


def test_upstream_statuses_progress_and_errors() -> None:
    for said, status in (
        ("QUEUED", RUNNING),
        ("processing", RUNNING),
        ("succeeded", SUCCEEDED),
        ("canceled", FAILED),
    ):
        assert videos_api.polled("t", {"status": said, "progress": "76%"}, 2.0).status == status
    running = videos_api.polled("t", {"status": "in_progress", "progress": "76%"}, 2.0)
    assert (running.progress, running.poll_after_s, running.result) == (
        76,
        2.0,
        {"upstream_status": "in_progress"},
    )
    assert videos_api.polled("t", {"status": "pending"}, None).result == {"upstream_status": "queued"}
    clean = videos_api.safe_error({"code": "moderation_blocked", "message": "The prompt was blocked."})
    assert clean == {"code": "moderation_blocked", "message": "The prompt was blocked."}
    for leaky in (
        {"code": "x", "message": "Incorrect API key provided: sk-abc"},
        {"message": "upstream http://10.0.0.5:8080/render failed"},
        {"message": "Traceback (most recent call last): ..."},
        {"message": "Your organization org-123 has no quota left"},
        "x" * 2000,
        None,
    ):
        assert videos_api.safe_error(leaky) == {
            "code": "video_generation_failed",
            "message": "The upstream could not make the video.",
        }, leaky
    assert (
        videos_api.safe_error({"code": "bad code!", "message": "Too long a prompt."})["code"]
        == "video_generation_failed"
    )


# --- lookup after an interrupted create ---------------------------------------------------------
class _Ctx:
    def __init__(self) -> None:
        self.state = _State()


class _State:
    class upstream:
        @staticmethod
        def default_timeouts() -> Any:
            from aitre.relay.upstream import Timeouts

            return Timeouts(connect=1, first_byte=10, idle=10)


def _channel() -> ChannelInfo:
    return ChannelInfo(1, "vid", "videos", "http://up", "k", frozenset({"sora-2"}), {})


def _video(video_id: str, created: int, **changes: Any) -> dict[str, Any]:
    return {"id": video_id, "status": "queued", "created_at": created, "model": "sora-2", "prompt": "p",
            "seconds": "8", "size": "1280x720", "remixed_from_video_id": None, **changes}  # fmt: skip


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the fake upstream lists, and which of its ids other tasks hold."""
    found: dict[str, Any] = {"pages": [], "held": set(), "asked": []}

    async def list_page(state: Any, channel: Any, after: str | None, limit: int = 100) -> videos_wire.Answer:
        found["asked"].append(after)
        if found["pages"] == 404:
            return videos_wire.Answer(404, {}, b"{}")
        page = found["pages"][len(found["asked"]) - 1]
        return videos_wire.Answer(200, {}, orjson.dumps(page))

    async def held(self: Any, ctx: Any, channel: Any, task: Any, ids: list[str]) -> set[str]:
        return {i for i in ids if i in found["held"]}

    monkeypatch.setattr(videos_wire, "list_page", list_page)
    monkeypatch.setattr(videos_api.VideosProtocol, "_held_elsewhere", held)
    return found


async def test_lookup_finds_the_one_video_made_since_the_submit(upstream: dict[str, Any]) -> None:
    sent = now_ms() - 1000
    task = _task(status=SUBMITTING, history=[{"at": sent, "status": SUBMITTING, "channel_id": 1}])
    now_s = sent // 1000
    upstream["pages"] = [
        {
            "data": [
                _video("v3", now_s, prompt="other"),
                _video("v2", now_s),
                _video("v1", now_s - 200, size="720x1280"),
            ],
            "has_more": True,
        },
        {"data": [_video("v0", now_s - 1000)], "has_more": True},
    ]
    found = await videos_api.VideosProtocol().lookup(_Ctx(), _channel(), task)  # type: ignore[arg-type]
    assert found is not None and found.upstream_id == "v2" and found.status == RUNNING
    assert upstream["asked"] == [None, "v1"]  # paged back until older than the submit (and the clock skew)
    # a match another task holds is not ours; two that nobody holds cannot be told apart
    upstream["asked"], upstream["held"] = [], {"v2"}
    upstream["pages"] = [{"data": [_video("v2", now_s), _video("v5", now_s)], "has_more": False}]
    assert (await videos_api.VideosProtocol().lookup(_Ctx(), _channel(), task)).upstream_id == "v5"  # type: ignore[arg-type, union-attr]
    upstream["asked"], upstream["held"] = [], set()
    with pytest.raises(LookupUnsupported):
        await videos_api.VideosProtocol().lookup(_Ctx(), _channel(), task)  # type: ignore[arg-type]


async def test_lookup_without_a_match_waits_then_says_not_there(upstream: dict[str, Any]) -> None:
    upstream["pages"] = [{"data": [], "has_more": False}] * 2
    recent = _task(
        status=SUBMITTING, history=[{"at": now_ms() - 1000, "status": SUBMITTING, "channel_id": 1}]
    )
    with pytest.raises(RuntimeError):  # a create sent a second ago may still be under way: later
        await videos_api.VideosProtocol().lookup(_Ctx(), _channel(), recent)  # type: ignore[arg-type]
    sent = {
        "at": now_ms() - 200_000,
        "status": SUBMITTING,
        "channel_id": 1,
        "note": "submitting to channel 1",
    }
    looked = {"at": now_ms() - 1000, "status": SUBMITTING, "note": "lookup failed: may still be under way"}
    old = _task(status=SUBMITTING, history=[sent, looked])  # looking again does not move the send on
    assert await videos_api.VideosProtocol().lookup(_Ctx(), _channel(), old) is None  # type: ignore[arg-type]
    upstream["pages"] = 404
    with pytest.raises(LookupUnsupported):  # an upstream that cannot list
        await videos_api.VideosProtocol().lookup(_Ctx(), _channel(), old)  # type: ignore[arg-type]
