"""What every new route shares: the model list, auth, path-prefix and runtime faults, the event
log, and URLs that follow the simulator's mount point."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from aitre.simulator import catalog
from aitre.simulator.app import create_simulator_app
from tests.simulator.media import image_info
from tests.support.processes import Simulator


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(tmp_path_factory.mktemp("keyed-sim"), "sim-secret").start()
    yield sim
    sim.stop()


def test_models_lists_every_openai_model(sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list()]
    assert ids == catalog.all_models()
    for model in ("gpt-3.5-turbo-instruct", "text-embedding-3-large", "dall-e-3", "tts-1", "whisper-1"):
        assert model in ids
    assert not any(m.startswith("flux") for m in ids)
    assert sdk.models.retrieve("gpt-image-1").id == "gpt-image-1"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/completions", {"json": {"model": "davinci-002", "prompt": "x"}}),
        ("POST", "/v1/embeddings", {"json": {"model": "text-embedding-3-small", "input": "x"}}),
        ("POST", "/v1/images/generations", {"json": {"model": "dall-e-2", "prompt": "x"}}),
        ("POST", "/v1/audio/speech", {"json": {"model": "tts-1", "voice": "alloy", "input": "x"}}),
        ("POST", "/v1/audio/transcriptions", {"data": {"model": "whisper-1"}}),
    ],
)
def test_openai_routes_need_the_key(
    keyed: Simulator, method: str, path: str, kwargs: dict[str, object]
) -> None:
    r = httpx.request(method, keyed.url + path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_bfl_needs_the_x_key(keyed: Simulator) -> None:
    r = httpx.post(keyed.url + "/v1/flux-dev", json={"prompt": "x"}, headers={"x-key": "wrong"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_api_key"
    r = httpx.post(keyed.url + "/v1/flux-dev", json={"prompt": "x"}, headers={"x-key": "sim-secret"})
    assert r.status_code == 200
    poll = httpx.get(r.json()["polling_url"], headers={"x-key": "sim-secret"})
    assert poll.json()["status"] == "Pending"


def test_keyed_simulator_accepts_its_key(keyed: Simulator) -> None:
    with openai.OpenAI(base_url=keyed.url + "/v1", api_key="sim-secret", max_retries=0) as sdk:
        assert sdk.embeddings.create(model="text-embedding-3-small", input="x").data


def test_path_prefix_fault_and_events(simulator: Simulator) -> None:
    with (
        openai.OpenAI(
            base_url=simulator.url + "/f/status=502/v1", api_key=simulator.key, max_retries=0
        ) as sdk,
        pytest.raises(openai.InternalServerError),
    ):
        sdk.embeddings.create(model="text-embedding-3-small", input="x")
    events = simulator.events()
    mine = [e for e in events if e["path"] == "/f/status=502/v1/embeddings"]
    assert mine and mine[-1]["outcome"] == "fault"


def test_runtime_fault_rule_and_truncate(simulator: Simulator, sdk: openai.OpenAI) -> None:
    simulator.set_faults({"spec": "status=429", "path": "/images/generations", "times": 1})
    try:
        with pytest.raises(openai.RateLimitError):
            sdk.images.generate(model="dall-e-2", prompt="x")
        assert sdk.images.generate(model="dall-e-2", prompt="x").data
    finally:
        simulator.set_faults()
    with pytest.raises(openai.APIConnectionError):
        sdk.embeddings.create(
            model="text-embedding-3-small", input="x", extra_headers={"x-sim-fault": "truncate=0"}
        )


async def test_urls_follow_the_mount_point() -> None:
    """Mounted like the gateway mounts it (`/sim`), links must point under `/sim`."""
    outer = Starlette(routes=[Mount("/sim", app=create_simulator_app(keys=lambda: ["k"]))])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gw.test", headers={"Authorization": "Bearer k", "x-key": "k"}
    ) as client:
        r = await client.post(
            "/sim/v1/images/generations", json={"model": "dall-e-2", "prompt": "x", "size": "256x256"}
        )
        url = r.json()["data"][0]["url"]
        assert url.startswith("http://gw.test/sim/files/")
        assert image_info((await client.get(url)).content)[1] == (256, 256)
        r = await client.post("/sim/f/delay=0/v1/flux-dev", json={"prompt": "x"})
        assert r.json()["polling_url"].startswith("http://gw.test/sim/v1/get_result?id=")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"model": "davinci-002", "prompt": "x"}),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}),
        ("/v1/images/generations", {"model": "gpt-image-1", "prompt": "x", "quality": "low"}),
        (
            "/v1/chat/completions",
            {"model": "gemini-2.5-flash-image", "messages": [{"role": "user", "content": "x"}]},
        ),
    ],
)
def test_bad_json_and_no_usage(http: httpx.Client, path: str, body: dict[str, object]) -> None:
    broken = http.post(path, json=body, headers={"x-sim-fault": "bad_json"})
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    answer = http.post(path, json=body, headers={"x-sim-fault": "no_usage"}).json()
    assert "usage" not in answer


def test_completions_stream_truncated_after_two_chunks(http: httpx.Client) -> None:
    body = {"model": "davinci-002", "prompt": "Tell me a story", "stream": True}
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/completions", json=body, headers={"x-sim-fault": "truncate=2"}) as r,
    ):
        lines.extend(line for line in r.iter_lines() if line.startswith("data: "))
    assert len(lines) == 2
