"""Image by chat: a chat request to an image model comes back as a chat completion whose
content links to images the gateway itself serves; stream and non-stream, with references."""

from __future__ import annotations

import base64
import io
import re

import httpx
import pytest
from PIL import Image

from tests.support.clients import client
from tests.support.processes import Gateway

LINK = re.compile(r"!\[[^\]]*\]\((http[^)]+)\)")


def _png_data_uri(color: tuple[int, int, int] = (200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _check_links(gw: Gateway, content: str, fmt: str = "PNG") -> list[Image.Image]:
    urls = LINK.findall(content)
    assert urls, content
    images = []
    for url in urls:
        assert url.startswith(gw.url + "/media/")
        r = httpx.get(url)
        assert r.status_code == 200
        img = Image.open(io.BytesIO(r.content))
        img.load()
        assert img.format == fmt
        images.append(img)
    return images


@pytest.mark.parametrize("model", ["gpt-4o-image", "gemini-2.5-flash-image-preview"])
def test_non_stream_text_prompt(gateway: Gateway, model: str) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "create a war cat"}]
    )
    resp = raw.parse()
    assert resp.object == "chat.completion" and resp.model == model
    assert resp.choices[0].finish_reason == "stop"
    _check_links(gateway, resp.choices[0].message.content or "")
    assert "data:image" not in (resp.choices[0].message.content or "")
    row = gateway.wait_log(raw.headers["x-request-id"])
    assert row["status_code"] == 200 and row["model"] == model


@pytest.mark.parametrize("model", ["gpt-4o-image", "gemini-2.5-flash-image-preview"])
def test_stream_with_reference_image(gateway: Gateway, model: str) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "make it a war cat"},
                {"type": "image_url", "image_url": {"url": _png_data_uri()}},
            ],
        }
    ]
    chunks = list(client(gateway).chat.completions.create(model=model, messages=messages, stream=True))  # type: ignore[arg-type]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"
    _check_links(gateway, content)


def test_stream_include_usage(gateway: Gateway) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="gpt-4o-all",
            messages=[{"role": "user", "content": "a red balloon"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_prompt_is_required(gateway: Gateway) -> None:
    r = httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        json={
            "model": "gpt-4o-image",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _png_data_uri()}}]}
            ],
        },
    )
    assert r.status_code == 400


@pytest.mark.parametrize("model", ["flux", "flux-pro-1.1"])
def test_flux_through_chat(gateway: Gateway, model: str) -> None:
    """A Flux model (BFL's task API behind the simulator channel) answers a chat request with a
    markdown link to the image, although no chat protocol serves it."""
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "a lighthouse at dawn"}]
    )
    resp = raw.parse()
    assert resp.model == model and resp.choices[0].finish_reason == "stop"
    content = resp.choices[0].message.content or ""
    urls = LINK.findall(content)
    assert len(urls) == 1, content
    assert urls[0].startswith(gateway.url + "/media/")
    r = httpx.get(urls[0])
    img = Image.open(io.BytesIO(r.content))
    img.load()
    assert img.format == "JPEG" and img.size == (1024, 1024)
    row = gateway.wait_log(raw.headers["x-request-id"])
    assert row["status_code"] == 200 and row["endpoint"] == "chat.completions" and row["quota"] > 0


def test_flux_through_chat_stream(gateway: Gateway) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="flux-dev",
            messages=[{"role": "user", "content": "a red barn"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (url,) = LINK.findall(content)
    img = Image.open(io.BytesIO(httpx.get(url).content))
    img.load()
    assert img.format == "JPEG"
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_flux_through_chat_cannot_take_a_reference_it_cannot_edit(gateway: Gateway) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "make it red"},
                {"type": "image_url", "image_url": {"url": _png_data_uri()}},
            ],
        }
    ]
    r = httpx.post(
        gateway.api + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        json={"model": "flux-dev", "messages": messages},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "model_not_supported"


def test_flux_kontext_through_chat_edits_the_reference(gateway: Gateway) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "make it a poster"},
                {"type": "image_url", "image_url": {"url": _png_data_uri((10, 200, 10))}},
            ],
        }
    ]
    resp = client(gateway).chat.completions.create(model="flux-kontext-pro", messages=messages)  # type: ignore[arg-type]
    (img,) = _check_links(gateway, resp.choices[0].message.content or "", "JPEG")
    r, g, b = img.convert("RGB").getpixel((img.width // 2, img.height // 4))  # type: ignore[misc]
    assert g > r and g > b  # drawn on the green reference
