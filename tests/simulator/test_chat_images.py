"""Image models called through chat completions: markdown with a data URI plus `message.images`."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.simulator.media import image_info, png_bytes

MODEL = "gemini-2.5-flash-image-preview"


def _data_uri_image(uri: str) -> bytes:
    head, _, payload = uri.partition(",")
    assert head == "data:image/png;base64"
    return base64.b64decode(payload)


def test_text_to_image(sdk: openai.OpenAI) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "draw a banana"}]
    )
    data: dict[str, Any] = raw.http_response.json()
    message = data["choices"][0]["message"]
    assert message["content"].startswith("Here is your image.\n\n![image](data:image/png;base64,")
    uri = message["images"][0]["image_url"]["url"]
    assert message["images"][0]["type"] == "image_url" and message["images"][0]["index"] == 0
    assert message["content"].endswith(f"({uri})")
    assert image_info(_data_uri_image(uri)) == ("PNG", (1024, 1024), "RGB")
    resp = raw.parse()
    assert resp.usage is not None and resp.usage.completion_tokens == 1290
    assert resp.usage.prompt_tokens > 0


def test_reference_image_shapes_the_output(sdk: openai.OpenAI) -> None:
    green = "data:image/png;base64," + base64.b64encode(png_bytes((40, 40), (0, 220, 0, 255))).decode()
    content: Any = [
        {"type": "text", "text": "make it brighter"},
        {"type": "image_url", "image_url": {"url": green}},
        {"type": "image_url", "image_url": {"url": "https://example.com/ignored.png"}},
    ]
    resp = sdk.chat.completions.create(
        model="gemini-2.5-flash-image", messages=[{"role": "user", "content": content}]
    )
    images = resp.choices[0].message.model_extra["images"]  # type: ignore[index]
    with Image.open(io.BytesIO(_data_uri_image(images[0]["image_url"]["url"]))) as img:
        r, g, b = img.convert("RGB").getpixel((100, 100))  # type: ignore[misc]
    assert g > 150 and r < 120 and b < 120


def test_stream(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "draw a kiwi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        chunks[1].choices[0].delta.content
        and "![image](data:image/png;base64," in chunks[1].choices[0].delta.content
    )
    assert chunks[2].choices[0].finish_reason == "stop"
    assert (
        chunks[3].choices == [] and chunks[3].usage is not None and chunks[3].usage.completion_tokens == 1290
    )


def test_gpt4o_image_links_a_served_file(sdk: openai.OpenAI) -> None:
    resp = sdk.chat.completions.create(
        model="gpt-4o-image", messages=[{"role": "user", "content": "a war cat"}]
    )
    content = resp.choices[0].message.content or ""
    url = content.rpartition("](")[2].rstrip(")")
    assert url.startswith("http")
    assert image_info(httpx.get(url).content)[:2] == ("PNG", (1024, 1024))


def test_bad_reference_and_fault(sdk: openai.OpenAI) -> None:
    content: Any = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-sim-fault": "status=500"},
        )
