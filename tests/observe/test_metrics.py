"""`/metrics` counts what a scripted run did, summed over two worker processes, and refuses
scrapes it was not configured for."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.mj.kit import FAST, Mj, new_user
from tests.observe.kit import TOKEN, Samples, scrape, value
from tests.support.processes import SIM_KEY, Gateway, Simulator, wait_until

CHATS, STREAMS, IMAGES, MJ_TASKS = 6, 4, 2, 2


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(tmp_path_factory.mktemp("sim")).start()
    httpx.post(s.url + "/_sim/config", json={"mj_step_seconds": 0.05}, headers=s.headers).raise_for_status()
    yield s
    s.stop()


def _gateway(tmp: Path, sim: Simulator, **env: str) -> Gateway:
    gw = Gateway(tmp, AITRE_SIMULATOR_ENABLED="false", **FAST, **env).start()
    gw.cli(
        "channel",
        "add",
        "chat",
        "--base-url",
        sim.url + "/v1",
        "--models",
        "gpt-4o-mini,dall-e-3",
        "--key",
        SIM_KEY,
    )
    gw.cli(
        "channel", "add", "mj", "--type", "midjourney-proxy", "--base-url", sim.url + "/mj", "--key", SIM_KEY
    )
    return gw


def _chat(gw: Gateway, key: str, stream: bool) -> None:
    assert gw.chat(key, stream=stream).status_code == 200


def _image(gw: Gateway, key: str) -> None:
    resp = httpx.post(
        gw.api + "/images/generations",
        json={"model": "dall-e-3", "prompt": "a cat", "n": 1},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text


def _expected(gw: Gateway) -> dict[str, float]:
    """What the usage log (the books) says the run did."""
    out: dict[str, float] = {}
    for r in gw.sql(
        "SELECT endpoint, status_code, COUNT(*) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c, "
        "SUM(quota) AS q, SUM(stream) AS s FROM usage_logs GROUP BY endpoint, status_code"
    ):
        key = f"{r['endpoint']}/{r['status_code']}"
        out[key], out[key + "/prompt"], out[key + "/completion"] = r["n"], r["p"], r["c"]
        out[key + "/cost"], out[key + "/streams"] = r["q"], r["s"]
    return out


def _matches(samples: Samples, books: dict[str, float]) -> list[str]:
    """Where the metrics and the books differ (empty: they agree)."""
    checks = {
        "chat.completions/200": value(
            samples, "aitre_requests_total", route="chat.completions", status="200"
        ),
        "chat.completions/200/prompt": value(
            samples, "aitre_tokens_total", route="chat.completions", kind="prompt"
        ),
        "chat.completions/200/completion": value(
            samples, "aitre_tokens_total", route="chat.completions", kind="completion"
        ),
        "chat.completions/200/cost": value(samples, "aitre_cost_units_total", route="chat.completions"),
        "chat.completions/200/streams": value(
            samples, "aitre_time_to_first_byte_seconds_count", route="chat.completions"
        ),
        "images.generations/200": value(
            samples, "aitre_requests_total", route="images.generations", status="200"
        ),
        "images.generations/200/cost": value(samples, "aitre_cost_units_total", route="images.generations"),
        "mj.imagine/200": value(samples, "aitre_tasks_ended_total", kind="mj", status="succeeded"),
        "mj.imagine/200/cost": value(samples, "aitre_cost_units_total", route="mj.imagine"),
    }
    return [f"{k}: metrics {v}, books {books.get(k)}" for k, v in checks.items() if v != books.get(k)]


def test_metrics_count_a_scripted_run_summed_over_two_workers(tmp_path: Path, sim: Simulator) -> None:
    gw = _gateway(tmp_path / "gw", sim, AITRE_WORKERS="2", AITRE_METRICS_TOKEN=TOKEN)
    try:
        _, key = new_user(gw, "10")
        wait_until(
            lambda: (
                httpx.get(gw.api + "/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            )
        )
        time.sleep(0.6)  # both workers' catalogs have the new channels
        with ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit(_chat, gw, key, False) for _ in range(CHATS)]
            jobs += [pool.submit(_chat, gw, key, True) for _ in range(STREAMS)]
            jobs += [pool.submit(_image, gw, key) for _ in range(IMAGES)]
            with Mj(gw, (new_user(gw)[0], key)) as mj:
                jobs += [pool.submit(mj.done, "imagine", prompt=f"cat {i}") for i in range(MJ_TASKS)]
                for job in jobs:
                    job.result()
        refused = httpx.post(gw.api + "/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
        assert refused.status_code == 401
        unknown = gw.chat(key, model="no-such-model-" + "x" * 20)
        assert unknown.status_code == 404

        def problems(samples: Samples) -> list[str]:
            books = _expected(gw)
            if books.get("mj.imagine/200") != MJ_TASKS:
                return ["the MJ tasks are not all billed yet"]
            found = _matches(samples, books)
            exact = {
                ("aitre_http_requests_total", ("path", "/v1/chat/completions"), ("status", "200")): CHATS
                + STREAMS,
                ("aitre_http_requests_total", ("path", "/v1/chat/completions"), ("status", "401")): 1,
                ("aitre_http_requests_total", ("path", "/mj/submit/imagine"), ("status", "200")): MJ_TASKS,
                ("aitre_requests_total", ("model", "_unknown"), ("status", "404")): 1,
                ("aitre_overhead_seconds_count", ("path", "/v1/chat/completions")): CHATS + STREAMS + 2,
                # the unknown model's request too
                ("aitre_request_duration_seconds_count", ("route", "chat.completions")): CHATS + STREAMS + 1,
                ("aitre_channel_breaker_state",): 0,
                ("aitre_scrape_database_up",): 1,
                ("aitre_tasks_open",): 0,
            }
            for (name, *labels), want in exact.items():
                got = value(samples, name, **dict(labels))
                if got != want:
                    found.append(f"{name}{labels}: {got}, not {want}")
            if value(samples, "aitre_upstream_attempts_total", status="200") < CHATS + STREAMS + IMAGES:
                found.append("upstream attempts missing")
            return found

        wait_until(lambda: not problems(scrape(gw)), 15, 0.3)
        books = _expected(gw)
        assert (
            books["chat.completions/200"] == CHATS + STREAMS
            and books["chat.completions/200/streams"] == STREAMS
        )
        assert books["images.generations/200"] == IMAGES
        # Every worker kept its own counts; the scrape summed them.
        files = wait_until(lambda: sorted((gw.data_dir / "prometheus").glob("counter_*.db")), 5)
        assert len(files) == 2, files
        # Nothing is counted twice: later scrapes (after more hand-overs) say the same.
        time.sleep(1.5)
        assert problems(scrape(gw)) == []
    finally:
        gw.stop()


def test_scrapes_are_refused_unless_configured(tmp_path: Path, sim: Simulator) -> None:
    off = Gateway(tmp_path / "off", AITRE_SIMULATOR_ENABLED="false").start()
    guarded = Gateway(
        tmp_path / "on",
        AITRE_SIMULATOR_ENABLED="false",
        AITRE_METRICS_TOKEN=TOKEN,
        AITRE_METRICS_ALLOW_IPS="10.0.0.0/8,127.0.0.1",
    ).start()
    only_far = Gateway(
        tmp_path / "far", AITRE_SIMULATOR_ENABLED="false", AITRE_METRICS_ALLOW_IPS="10.9.9.9"
    ).start()
    try:
        # Not configured: as if the route did not exist.
        resp = httpx.get(off.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
        url = guarded.url + "/metrics"
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {guarded.admin_key}"},  # an admin key is not the metrics token
            {"Authorization": "Bearer " + "a" * 60_000},
            {"Authorization": b"Bearer caf\xc3\xa9\xff"},  # not ASCII
        ):
            resp = httpx.get(url, headers=headers)
            assert resp.status_code == 401, (headers, resp.status_code)
            assert resp.json()["error"]["code"] == "invalid_metrics_token" and "aitre_" not in resp.text
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405
        # Behind the trusted proxy (127.0.0.1), the forwarded client's address is the one checked.
        far = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.7"}
        assert httpx.get(url, headers=far).status_code == 403
        near = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "10.1.2.3"}
        assert httpx.get(url, headers=near).status_code == 200
        # An address list alone: this client's address is not on it.
        resp = httpx.get(only_far.url + "/metrics")
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "metrics_forbidden"
    finally:
        off.stop()
        guarded.stop()
        only_far.stop()
