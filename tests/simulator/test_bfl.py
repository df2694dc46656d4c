"""Black Forest Labs' async API: submit, poll Pending -> Ready, download the sample."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.simulator.media import image_info, png_bytes
from tests.support.processes import SIM_KEY, Simulator


@pytest.fixture
def polls(http: httpx.Client) -> Iterator[None]:
    """Two Pending polls (the default), restored afterwards."""
    http.post("/_sim/config", json={"pending_polls": 2}).raise_for_status()
    yield
    http.post("/_sim/config", json={"pending_polls": 2}).raise_for_status()


def _submit(http: httpx.Client, model: str, **body: Any) -> dict[str, Any]:
    r = http.post(f"/v1/{model}", json=body, headers={"x-key": SIM_KEY})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _poll_until_done(url: str) -> list[dict[str, Any]]:
    seen = []
    for _ in range(10):
        data: dict[str, Any] = httpx.get(url, headers={"x-key": SIM_KEY}).json()
        seen.append(data)
        if data["status"] != "Pending":
            break
    return seen


@pytest.mark.usefixtures("polls")
def test_pending_then_ready_with_a_real_image(http: httpx.Client, simulator: Simulator) -> None:
    task = _submit(http, "flux-pro-1.1", prompt="a red barn", width=1024, height=768)
    assert task["cost"] == 4.0
    assert task["polling_url"] == f"{simulator.url}/v1/get_result?id={task['id']}"
    seen = _poll_until_done(task["polling_url"])
    assert [s["status"] for s in seen] == ["Pending", "Pending", "Ready"]
    assert [s["progress"] for s in seen[:2]] == [0.0, 0.5]
    result = seen[-1]["result"]
    assert result["prompt"] == "a red barn" and isinstance(result["seed"], int)
    assert result["end_time"] >= result["start_time"]
    sample = httpx.get(result["sample"])
    assert sample.headers["content-type"] == "image/jpeg"
    assert image_info(sample.content)[:2] == ("JPEG", (1024, 768))


def test_aspect_ratio_png_and_input_image(http: httpx.Client) -> None:
    http.post("/_sim/config", json={"pending_polls": 0}).raise_for_status()
    try:
        ref = base64.b64encode(png_bytes((64, 64), (250, 10, 10, 255))).decode()
        task = _submit(
            http,
            "flux-kontext-pro",
            prompt="make it red",
            aspect_ratio="16:9",
            output_format="png",
            input_image=ref,
        )
        (ready,) = _poll_until_done(task["polling_url"])
        data = httpx.get(ready["result"]["sample"]).content
        fmt, (w, h), _ = image_info(data)
        assert fmt == "PNG" and w % 32 == 0 and h % 32 == 0 and abs(w / h - 16 / 9) < 0.05
        ultra = _submit(http, "flux-pro-1.1-ultra", prompt="wide", aspect_ratio="1:1")
        (ready,) = _poll_until_done(ultra["polling_url"])
        assert image_info(httpx.get(ready["result"]["sample"]).content)[1] == (2048, 2048)
    finally:
        http.post("/_sim/config", json={"pending_polls": 2}).raise_for_status()


@pytest.mark.usefixtures("polls")
@pytest.mark.parametrize(
    ("prompt", "status"), [("please moderate-me", "Request Moderated"), ("fail-me now", "Error")]
)
def test_moderation_and_failure(http: httpx.Client, prompt: str, status: str) -> None:
    task = _submit(http, "flux-dev", prompt=prompt)
    seen = _poll_until_done(task["polling_url"])
    assert seen[-1]["status"] == status and seen[-1]["result"] is None


def test_unknown_task(http: httpx.Client) -> None:
    r = http.get("/v1/get_result", params={"id": "no-such-task"})
    assert r.json() == {"id": "no-such-task", "status": "Task not found"}
    assert http.get("/v1/get_result").status_code == 422


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("flux-dev", {"prompt": "x", "width": 1000}),
        ("flux-pro-1.1", {"prompt": "x", "height": 2048}),
        ("flux-pro-1.1", {"width": 512}),
        ("flux-kontext-max", {"prompt": "x", "aspect_ratio": "4:1"}),
        ("flux-2-pro", {"prompt": "x", "width": 1000}),
        ("flux-dev", {"prompt": "x", "output_format": "gif"}),
        ("flux-dev", {"prompt": "x", "input_image": "%%%not-base64"}),
    ],
)
def test_validation_errors_are_422(http: httpx.Client, model: str, body: dict[str, Any]) -> None:
    r = http.post(f"/v1/{model}", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "body"


def test_flux2_sizes(http: httpx.Client) -> None:
    task = _submit(http, "flux-2-flex", prompt="x", width=1440, height=816)
    assert task["id"]


def test_unknown_model_and_faults(http: httpx.Client) -> None:
    r = http.post("/v1/flux-9", json={"prompt": "x"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = http.post("/v1/flux-dev", json={"prompt": "x"}, headers={"x-sim-fault": "status=429"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json() == {"error": "rate_limit_exceeded", "message": "Rate limit reached for requests."}
    r = http.get("/v1/get_result", params={"id": "x"}, headers={"x-sim-fault": "status=503"})
    assert r.status_code == 503 and r.json()["error"] == "service_unavailable"
