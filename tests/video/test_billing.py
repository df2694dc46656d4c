"""Every video's bill: reserved at create by model, duration and size (the shipped prices, or the
operator's), charged exactly once when it completes, refunded exactly when it fails upstream or is
deleted while running; one usage row per video; the balance always equals the ledger."""

from __future__ import annotations

import time

import pytest

from tests.billing.helpers import balance, charged, consistent, entries
from tests.support.processes import Gateway, wait_until
from tests.video.kit import UNIT, Videos, ledger

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@pytest.mark.parametrize(
    ("params", "usd_cents"),
    [
        ({"prompt": "a priced cat"}, 40),  # sora-2, 4 s at $0.10
        ({"prompt": "a long cat", "seconds": "12", "size": "1280x720"}, 120),
        ({"prompt": "a pro cat", "model": "sora-2-pro", "seconds": "8"}, 240),  # $0.30 a second
        ({"prompt": "a big pro cat", "model": "sora-2-pro", "size": "1024x1792", "seconds": "8"}, 400),
    ],
)
def test_a_video_is_charged_once_by_model_seconds_and_size(
    gw: Gateway, user: Videos, params: dict[str, str], usd_cents: int
) -> None:
    start = balance(gw, user.username)
    created = user.sdk.videos.create(**params)  # type: ignore[arg-type]
    # reserved at create, before the upstream has it
    assert entries(gw, f"task_{created.id}")["reserve"] == -usd_cents * UNIT // 100
    video = user.done(created.id)
    assert video.status == "completed"
    assert charged(ledger(gw, video.id)) == usd_cents * UNIT // 100
    log = gw.wait_log(video.id)
    assert (log["endpoint"], log["model"], log["quota"], log["status_code"]) == (
        "video.create",
        params.get("model", "sora-2"),
        usd_cents * UNIT // 100,
        200,
    )
    assert len(gw.logs_for(video.id)) == 1
    for _ in range(3):  # reading and downloading cost nothing more
        user.sdk.videos.retrieve(video.id)
        user.sdk.videos.download_content(video.id).read()
    wait_until(lambda: balance(gw, user.username) == start - usd_cents * UNIT // 100)
    assert consistent(gw, user.username)


def _created_at(gw: Gateway, user: Videos, reserve: int, **params: str) -> str:
    """A video created once the gateway uses a price just set (its catalog reloads within 0.2 s):
    one made at the old price before then is deleted (refunded)."""
    deadline = time.monotonic() + 10
    while True:
        video = user.sdk.videos.create(**params)  # type: ignore[arg-type]
        if entries(gw, f"task_{video.id}")["reserve"] == -reserve:
            return video.id
        user.sdk.videos.delete(video.id)
        assert time.monotonic() < deadline, "the operator's price was never used"
        time.sleep(0.1)


def test_the_operators_price_wins_and_a_remix_costs_a_video(gw: Gateway, user: Videos) -> None:
    model = "sora-2-2025-10-06"
    gw.cli("price", "set", model, "--per-second", "0.05", "--image", "1280x720=0.07", "--per-call", "0.01")
    try:
        portrait = _created_at(gw, user, 41 * UNIT // 100, prompt="cheap", model=model, seconds="8")
        landscape = user.sdk.videos.create(prompt="wide", model=model, seconds="4", size="1280x720").id
        assert charged(ledger(gw, user.done(portrait).id)) == 41 * UNIT // 100  # $0.01 + 8 × $0.05
        assert charged(ledger(gw, user.done(landscape).id)) == 29 * UNIT // 100  # $0.01 + 4 × $0.07
        remix = user.sdk.videos.remix(landscape, prompt="cheap and wider")
        assert charged(ledger(gw, user.done(remix.id).id)) == 29 * UNIT // 100
        assert gw.wait_log(remix.id)["endpoint"] == "video.remix"
    finally:
        gw.cli("price", "delete", model)
    assert consistent(gw, user.username)


@pytest.mark.parametrize(
    ("prompt", "code", "message"),
    [
        (
            "a doomed clip --sim-fail",
            "video_generation_failed",
            "Video generation failed (simulated: the prompt asked).",
        ),
        (
            "a forbidden clip --sim-moderate",
            "moderation_blocked",
            "Your request was blocked by moderation (simulated).",
        ),
    ],
)
def test_an_upstream_failure_fails_the_video_and_refunds_it_exactly(
    gw: Gateway, user: Videos, prompt: str, code: str, message: str
) -> None:
    start = balance(gw, user.username)
    video = user.done(user.sdk.videos.create(prompt=prompt).id)
    assert video.status == "failed" and video.error is not None
    assert (video.error.code, video.error.message) == (code, message)
    assert video.completed_at is not None and video.expires_at is None  # ended, nothing to keep
    entries_ = ledger(gw, video.id)
    assert set(entries_) == {"reserve", "refund"} and charged(entries_) == 0
    log = gw.wait_log(video.id)
    assert (log["quota"], log["status_code"]) == (0, 502)
    refused = user.http("GET", f"/v1/videos/{video.id}/content")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "video_not_ready"
    refused = user.http("POST", f"/v1/videos/{video.id}/remix", json={"prompt": "again"})
    assert refused.status_code == 400
    wait_until(lambda: balance(gw, user.username) == start)
    assert consistent(gw, user.username)


def test_deleting_a_running_video_cancels_and_refunds_it(gw: Gateway, user: Videos) -> None:
    start = balance(gw, user.username)
    video = user.sdk.videos.create(prompt="a clip that never ends --sim-stuck")
    wait_until(lambda: user.sdk.videos.retrieve(video.id).status == "in_progress")
    deleted = user.sdk.videos.delete(video.id)
    assert deleted.deleted is True
    assert charged(ledger(gw, video.id)) == 0
    (row,) = gw.sql("SELECT status, error_code, deleted_at FROM tasks WHERE id = ?", (video.id,))
    assert (row["status"], row["error_code"]) == ("cancelled", "cancelled") and row["deleted_at"]
    wait_until(lambda: balance(gw, user.username) == start)
    assert gw.wait_log(video.id)["status_code"] == 499
    assert consistent(gw, user.username)
