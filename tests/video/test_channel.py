"""The `videos` channel type against a separate `/v1/videos` server (the simulator process, with its
own key): added with the CLI, videos made there through the SDK unchanged, created as a multipart
form or as JSON, files copied into aitre's media store; other video models by mapping; what the
upstream refuses, fails, loses or forgets, each ending once and billed right; a gateway killed
mid-task finishing after a restart, charged once, nothing created twice upstream."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from tests.billing.helpers import balance, charged, consistent
from tests.simulator.media import image_info, quadrants_png, video_frame, video_info
from tests.support.processes import SIM_KEY, Gateway, Simulator, wait_until
from tests.video.kit import FAST, UNIT, Videos, ledger, new_user, sim_process_config

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(tmp_path_factory.mktemp("video-sim")).start()
    sim_process_config(s)
    yield s
    s.stop()


@pytest.fixture
def fresh(sim: Simulator) -> Iterator[Simulator]:
    """The simulator with no faults and its fast clock, before and after the test."""
    sim.reset()
    sim_process_config(sim)
    yield sim
    sim.reset()
    sim_process_config(sim)


def _gateway(make_gateway: Callable[..., Gateway], sim: Simulator, *config: str, **env: str) -> Gateway:
    gw = make_gateway(AITRE_SIMULATOR_ENABLED="false", **{**FAST, **env}).start()
    args = ["channel", "add", "vid", "--type", "videos", "--base-url", sim.url, "--key", SIM_KEY, *config]
    gw.cli(*args)
    return gw


@contextlib.contextmanager
def _serving(body: bytes, content_type: str) -> Iterator[str]:
    """A plain web server with one file: the URL of it."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/reference.png"
    finally:
        server.shutdown()
        server.server_close()


def _creates(sim: Simulator) -> int:
    """Videos created on the simulator (a create names its model; a list does not)."""
    return sum(1 for e in sim.events() if e["path"] == "/v1/videos" and e["model"])


def _first_frame_is(mp4: bytes, colours: list[tuple[int, int, int]]) -> None:
    first = video_frame(mp4, 0)
    h, w, _ = first.shape
    spots = [
        first[h // 4, w // 4],
        first[h // 4, 3 * w // 4],
        first[3 * h // 4, w // 4],
        first[3 * h // 4, 3 * w // 4],
    ]
    for got, want in zip(spots, colours, strict=True):
        assert np.abs(got.astype(int) - np.array(want)).max() < 40, (got, want)


QUADRANTS = [(230, 30, 30), (30, 200, 40), (40, 60, 220), (240, 230, 40)]


def test_the_sdk_through_a_videos_channel(make_gateway: Callable[..., Gateway], fresh: Simulator) -> None:
    gw = _gateway(make_gateway, fresh, AITRE_MEDIA_RETENTION_DAYS="2")
    listed = json.loads(gw.cli("channel", "list", "--json").stdout)
    assert {"sora-2", "sora-2-pro"} <= set(next(c for c in listed if c["name"] == "vid")["models"].split(","))
    user = Videos(gw, new_user(gw, "20"))
    before = _creates(fresh)
    ref = quadrants_png((72, 128))
    video = user.sdk.videos.create_and_poll(
        prompt="a proxied fox", input_reference=("r.png", ref, "image/png")
    )
    assert video.status == "completed" and video.id.startswith("video_")
    assert video.expires_at is not None and video.expires_at - video.created_at == pytest.approx(
        2 * 86400, abs=5
    )
    upstream_id = gw.sql("SELECT upstream_id FROM tasks WHERE id = ?", (video.id,))[0]["upstream_id"]
    assert upstream_id != video.id and upstream_id.startswith("video_")  # the upstream's id stays with aitre
    mp4 = user.sdk.videos.download_content(video.id).read()
    assert video_info(mp4).frames > 0
    _first_frame_is(mp4, QUADRANTS)  # the uploaded reference went upstream
    assert image_info(user.sdk.videos.download_content(video.id, variant="thumbnail").read())[0] == "WEBP"
    # the files are aitre's own: the upstream forgetting the video changes nothing

    httpx.delete(f"{fresh.url}/v1/videos/{upstream_id}", headers=fresh.headers).raise_for_status()
    assert user.sdk.videos.download_content(video.id).read() == mp4
    remix = user.sdk.videos.create(prompt="another fox")
    assert user.done(remix.id).status == "completed"
    again = user.sdk.videos.remix(remix.id, prompt="the fox again")
    assert user.done(again.id).remixed_from_video_id == remix.id
    remote = {e["path"] for e in fresh.events()}
    assert any(p.endswith("/remix") for p in remote)
    assert [v.id for v in user.sdk.videos.list()] == [again.id, remix.id, video.id]
    assert user.sdk.videos.delete(video.id).deleted
    assert _creates(fresh) - before == 2  # the remix is no create
    assert consistent(gw, user.username)


def test_json_creates_mapped_models_and_refusals(
    make_gateway: Callable[..., Gateway], fresh: Simulator
) -> None:
    sim_process_config(fresh, video_any_size=True)
    config = json.dumps({"create_body": "json"})
    # the reference below is fetched from this machine: allowed here, refused by default
    gw = _gateway(make_gateway, fresh, "--config", config, AITRE_FETCH_ALLOWED_CIDRS="127.0.0.0/8")
    gw.cli(
        "channel", "add", "acme", "--type", "videos", "--base-url", fresh.url, "--key", SIM_KEY,
        "--models", "acme-video", "--map", "acme-video=sora-2",
    )  # fmt: skip
    gw.cli("price", "set", "acme-video", "--per-second", "0.02")
    user = Videos(gw, new_user(gw, "20"))
    start = balance(gw, user.username)
    ref = quadrants_png((72, 128))
    video = user.sdk.videos.create(prompt="json", input_reference=("r.png", ref, "image/png"))
    done = user.done(video.id)
    assert done.status == "completed"
    _first_frame_is(user.sdk.videos.download_content(done.id).read(), QUADRANTS)
    # a reference by URL, fetched by the gateway (the upstream never sees the URL)
    with _serving(ref, "image/png") as url:
        linked = user.http("POST", "/v1/videos", json={"prompt": "linked", "input_reference": url})
    assert linked.status_code == 200, linked.text
    assert user.done(linked.json()["id"]).status == "completed"
    _first_frame_is(user.sdk.videos.download_content(linked.json()["id"]).read(), QUADRANTS)
    # another provider's model, any size: mapped to what the upstream knows
    other = user.sdk.videos.create(prompt="acme", model="acme-video", size="320x240", seconds="8")  # type: ignore[arg-type]
    made = user.done(other.id)
    assert (made.status, made.model, made.size, made.seconds) == ("completed", "acme-video", "320x240", "8")
    assert video_info(user.sdk.videos.download_content(made.id).read()).frames > 0
    assert charged(ledger(gw, made.id)) == 8 * 2 * UNIT // 100
    # what the upstream refuses (a length it does not make) fails at once with its words, refunded
    refused = user.done(user.sdk.videos.create(prompt="too long", model="acme-video", seconds="6").id)  # type: ignore[arg-type]
    assert refused.status == "failed" and refused.error is not None
    assert "seconds" in refused.error.message and "4, 8, 12" in refused.error.message
    assert charged(ledger(gw, refused.id)) == 0
    assert gw.wait_log(refused.id)["status_code"] == 400
    wait_until(lambda: balance(gw, user.username) == start - 2 * 40 * UNIT // 100 - 16 * UNIT // 100)
    assert consistent(gw, user.username)


def test_upstream_failures_end_once_and_refund(
    make_gateway: Callable[..., Gateway], fresh: Simulator
) -> None:
    gw = _gateway(
        make_gateway,
        fresh,
        AITRE_TASK_TIMEOUTS=json.dumps({"video": 3}),
        AITRE_VIDEO_MAX_DOWNLOAD_BYTES="2000",
    )
    user = Videos(gw, new_user(gw, "20"))
    start = balance(gw, user.username)
    # The upstream answers 503: nothing started there; tried again (3 tries), then failed, refunded.
    fresh.set_faults({"spec": "status=503", "path": "/v1/videos"})
    down = user.done(user.sdk.videos.create(prompt="nobody makes this").id, timeout=60)
    assert down.status == "failed" and down.error is not None and down.error.code == "upstream_failed"
    assert charged(ledger(gw, down.id)) == 0
    assert _creates(fresh) == 3  # AITRE_TASK_SUBMIT_ATTEMPTS
    fresh.reset()  # (its events too)
    # The upstream forgets a running video: it fails, refunded.
    running = user.sdk.videos.create(prompt="a forgotten clip --sim-stuck")
    wait_until(lambda: user.sdk.videos.retrieve(running.id).status == "in_progress")
    upstream_id = gw.sql("SELECT upstream_id FROM tasks WHERE id = ?", (running.id,))[0]["upstream_id"]
    httpx.delete(f"{fresh.url}/v1/videos/{upstream_id}", headers=fresh.headers).raise_for_status()
    gone = user.done(running.id)
    assert gone.status == "failed" and gone.error is not None and gone.error.code == "upstream_video_gone"
    assert charged(ledger(gw, running.id)) == 0
    # A video that outlives its time limit fails as timed out, refunded; the upstream is told to stop.
    stuck = user.sdk.videos.create(prompt="a clip that never ends --sim-stuck")
    late = user.done(stuck.id, timeout=30)
    assert late.status == "failed" and late.error is not None and late.error.code == "task_timeout"
    assert charged(ledger(gw, stuck.id)) == 0
    stuck_upstream = gw.sql("SELECT upstream_id FROM tasks WHERE id = ?", (stuck.id,))[0]["upstream_id"]
    wait_until(
        lambda: any(e["path"] == f"/v1/videos/{stuck_upstream}" and e["outcome"] for e in fresh.events())
    )
    # A video larger than the gateway keeps fails at once, refunded (not downloaded again and again).
    big = user.done(user.sdk.videos.create(prompt="a clip too big to keep").id)
    assert big.status == "failed" and big.error is not None and big.error.code == "video_too_large"
    assert charged(ledger(gw, big.id)) == 0
    downloads = [e for e in fresh.events() if e["path"].endswith("/content")]
    assert len(downloads) == 1
    assert not list((gw.data_dir / "media" / ".incoming").glob("*"))  # no partial file left
    wait_until(lambda: balance(gw, user.username) == start)
    assert consistent(gw, user.username)
    assert _creates(fresh) == 3


def test_a_lost_create_answer_is_found_upstream_not_sent_again(
    make_gateway: Callable[..., Gateway], fresh: Simulator
) -> None:
    gw = _gateway(make_gateway, fresh)
    user = Videos(gw, new_user(gw, "20"))
    before = _creates(fresh)
    # The simulator makes the video, then cuts its answer: aitre cannot know the id it got.
    fresh.set_faults({"spec": "truncate=0", "path": "/v1/videos", "model": "sora-2", "times": 1})
    video = user.sdk.videos.create(prompt="an answer lost on the way", seconds="8")
    done = user.done(video.id, timeout=60)
    assert done.status == "completed"
    assert _creates(fresh) - before == 1  # found by searching the upstream's videos, not created again
    history = json.loads(gw.sql("SELECT history FROM tasks WHERE id = ?", (video.id,))[0]["history"])
    assert any("found upstream" in (h.get("note") or "") for h in history), history
    assert charged(ledger(gw, video.id)) == 80 * UNIT // 100
    assert video_info(user.sdk.videos.download_content(video.id).read()).seconds == pytest.approx(8, abs=0.2)


@pytest.mark.slow
def test_sigkill_mid_task_then_restart(make_gateway: Callable[..., Gateway], fresh: Simulator) -> None:
    sim_process_config(fresh, video_step_seconds=0.6)  # about 3 s a video: killed while they run
    gw = _gateway(make_gateway, fresh, AITRE_TASK_LEASE_SECONDS="120")
    user = Videos(gw, new_user(gw, "20"))
    start = balance(gw, user.username)
    before = _creates(fresh)
    ids = [user.sdk.videos.create(prompt=f"survivor {i}").id for i in range(5)]
    wait_until(lambda: all(user.sdk.videos.retrieve(i).status == "in_progress" for i in ids), timeout=20)
    gw.proc.kill()  # SIGKILL: leases held for two minutes; the restart does not wait for them
    t0 = time.monotonic()
    gw.start()
    for video_id in ids:
        assert user.done(video_id, timeout=30).status == "completed"
    assert time.monotonic() - t0 < 30
    assert _creates(fresh) - before == 5  # nothing created twice upstream
    for video_id in ids:
        assert charged(ledger(gw, video_id)) == 40 * UNIT // 100
        assert len(gw.logs_for(video_id)) == 1
    kinds = [r["kind"] for r in gw.sql("SELECT kind FROM ledger WHERE hold_id LIKE 'task_video_%'")]
    assert sorted(kinds) == ["reserve"] * 5 + ["settle"] * 5
    wait_until(lambda: balance(gw, user.username) == start - 5 * 40 * UNIT // 100)
    assert consistent(gw, user.username)


async def test_on_postgresql(make_gateway: Callable[..., Gateway], fresh: Simulator) -> None:
    """The same routes on PostgreSQL: cursor pages, deletes, a remix, the books."""
    from tests.support.pg import fresh_database

    async with fresh_database() as url:
        gw = _gateway(make_gateway, fresh, AITRE_DATABASE_URL=url)
        user = Videos(gw, new_user(gw, "20"))

        def quota() -> int:
            return int(user.http("GET", "/api/user/balance").json()["quota"])

        start = quota()
        ids = [user.sdk.videos.create(prompt=f"pg clip {i}").id for i in range(3)]
        for video_id in ids:
            assert user.done(video_id).status == "completed"
        assert [v.id for v in user.sdk.videos.list(limit=1)] == ids[::-1]
        assert [v.id for v in user.sdk.videos.list(limit=2, order="asc")] == ids
        remix = user.sdk.videos.remix(ids[0], prompt="pg remix")
        assert user.done(remix.id).status == "completed"
        assert user.sdk.videos.delete(ids[1]).deleted
        assert [v.id for v in user.sdk.videos.list(after=ids[2])] == [ids[0]]
        assert user.http("GET", f"/v1/videos/{ids[1]}").status_code == 404
        part = user.http("GET", f"/v1/videos/{remix.id}/content", headers={"Range": "bytes=0-3"})
        assert part.status_code == 206 and len(part.content) == 4
        wait_until(lambda: quota() == start - 4 * 40 * UNIT // 100)
        gw.stop()
