"""Image generation and edits through the gateway: OpenAI-format upstreams and Flux (BFL's
asynchronous API), with the official SDK; the images themselves are checked."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from tests.support.clients import client
from tests.support.processes import Gateway


def _image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _media(gw: Gateway, url: str) -> bytes:
    assert url.startswith(gw.url + "/media/"), url
    r = httpx.get(url)
    assert r.status_code == 200
    return r.content


@pytest.mark.parametrize("size", ["1024x1024", "1536x1024"])
def test_gpt_image_1_b64(gateway: Gateway, size: str) -> None:
    resp = client(gateway).images.generate(model="gpt-image-1", prompt="a red fox", size=size, quality="low")
    img = _image(base64.b64decode(resp.data[0].b64_json))
    assert img.format == "PNG" and f"{img.width}x{img.height}" == size
    assert resp.usage is not None and resp.usage.output_tokens > 0
    assert resp.size == size and resp.quality == "low"


def test_gpt_image_1_transparent_and_jpeg(gateway: Gateway) -> None:
    c = client(gateway)
    png = c.images.generate(
        model="gpt-image-1", prompt="a logo", background="transparent", output_format="png"
    )
    assert _image(base64.b64decode(png.data[0].b64_json)).mode == "RGBA"
    jpg = c.images.generate(model="gpt-image-1", prompt="a logo", output_format="jpeg")
    assert _image(base64.b64decode(jpg.data[0].b64_json)).format == "JPEG"


def test_dall_e_3_url_is_rehosted_and_b64(gateway: Gateway) -> None:
    c = client(gateway)
    resp = c.images.generate(
        model="dall-e-3", prompt="a lighthouse at dawn", size="1792x1024", quality="hd", style="vivid"
    )
    assert resp.data[0].revised_prompt
    img = _image(_media(gateway, resp.data[0].url))
    assert (img.width, img.height) == (1792, 1024)
    b64 = c.images.generate(model="dall-e-3", prompt="a lighthouse", response_format="b64_json")
    assert _image(base64.b64decode(b64.data[0].b64_json)).size == (1024, 1024)


def test_media_supports_range_requests(gateway: Gateway) -> None:
    url = client(gateway).images.generate(model="dall-e-3", prompt="a boat").data[0].url
    full = _media(gateway, url)
    part = httpx.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == full[:10]
    assert httpx.get(gateway.url + "/media/not-a-real-file.png").status_code == 404


def test_flux_via_bfl_async_api(gateway: Gateway) -> None:
    resp = client(gateway).images.generate(model="flux", prompt="A cute baby sea otter", n=2, size="1024x768")
    assert len(resp.data) == 2
    for item in resp.data:
        img = _image(_media(gateway, item.url))
        assert img.size == (1024, 768)


def test_flux_b64_and_model_variants(gateway: Gateway) -> None:
    resp = client(gateway).images.generate(
        model="flux-pro-1.1", prompt="mountains", response_format="b64_json", size="512x512"
    )
    assert _image(base64.b64decode(resp.data[0].b64_json)).size == (512, 512)


def test_flux_moderation_is_a_400(gateway: Gateway) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as exc:
        client(gateway).images.generate(model="flux", prompt="please moderate-me")
    assert exc.value.code == "content_policy_violation"


def test_gpt_image_1_edit_with_mask(gateway: Gateway) -> None:
    src = Image.new("RGB", (256, 256), (0, 128, 255))
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    buf, mbuf = io.BytesIO(), io.BytesIO()
    src.save(buf, "PNG")
    mask.save(mbuf, "PNG")
    resp = client(gateway).images.edit(
        model="gpt-image-1",
        image=("src.png", buf.getvalue(), "image/png"),
        mask=("mask.png", mbuf.getvalue(), "image/png"),
        prompt="add a sun",
        size="1024x1024",
    )
    img = _image(base64.b64decode(resp.data[0].b64_json))
    assert img.size == (1024, 1024)


def test_edit_without_image_is_400(gateway: Gateway) -> None:
    r = httpx.post(
        gateway.api + "/images/edits",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        data={"model": "gpt-image-1", "prompt": "x"},
        files={"unrelated": ("a.txt", b"hello", "text/plain")},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "dall-e-3"},
        {"model": "dall-e-3", "prompt": "x", "n": 0},
        {"model": "dall-e-3", "prompt": "x", "n": "2"},
    ],
)
def test_generation_bad_input_is_400(gateway: Gateway, body: dict[str, object]) -> None:
    r = httpx.post(
        gateway.api + "/images/generations",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        json=body,
    )
    assert r.status_code == 400


def test_images_are_logged(gateway: Gateway) -> None:
    raw = client(gateway).images.with_raw_response.generate(
        model="gpt-image-1", prompt="a cat", quality="low"
    )
    row = gateway.wait_log(raw.headers["x-request-id"])
    assert row["endpoint"] == "images.generations" and row["status_code"] == 200


GEMINI_IMAGE_MODELS = ["gemini-2.5-flash-image-preview", "gemini-2.5-flash-image"]


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("model", GEMINI_IMAGE_MODELS)
def test_gemini_image_models_generate(gateway: Gateway, model: str) -> None:
    """Listed by /v1/models, and served on the images API although their channel (the
    simulator, like Gemini's OpenAI-compatible relays) makes them only through chat."""
    c = client(gateway)
    assert model in {m.id for m in c.models.list()}
    raw = c.images.with_raw_response.generate(model=model, prompt="a red fox in the snow")
    resp = raw.parse()
    assert len(resp.data) == 1
    img = _image(_media(gateway, resp.data[0].url or ""))
    assert img.format == "PNG" and img.size == (1024, 1024)
    row = gateway.wait_log(raw.headers["x-request-id"])
    assert row["status_code"] == 200 and row["endpoint"] == "images.generations" and row["quota"] > 0
    b64 = c.images.generate(model=model, prompt="a red fox", response_format="b64_json", n=2)
    assert len(b64.data) == 2
    assert all(_image(base64.b64decode(d.b64_json or "")).format == "PNG" for d in b64.data)


@pytest.mark.parametrize("model", GEMINI_IMAGE_MODELS)
def test_gemini_image_models_edit(gateway: Gateway, model: str) -> None:
    source = _png((64, 64), (0, 160, 40))
    resp = client(gateway).images.edit(
        model=model, image=("src.png", source, "image/png"), prompt="make it a war cat"
    )
    img = _image(_media(gateway, resp.data[0].url or ""))
    assert img.format == "PNG"
    # The simulator draws on the reference it was given, tinted: its green shows through.
    r, g, b = img.convert("RGB").getpixel((img.width // 2, img.height // 4))  # type: ignore[misc]
    assert g > r and g > b


def test_flux_kontext_edit(gateway: Gateway) -> None:
    source = _png((96, 64), (0, 160, 40))
    resp = client(gateway).images.edit(
        model="flux-kontext-pro", image=("src.png", source, "image/png"), prompt="make it a poster"
    )
    img = _image(_media(gateway, resp.data[0].url or ""))
    assert img.format == "JPEG"
    r, g, b = img.convert("RGB").getpixel((img.width // 2, img.height // 4))  # type: ignore[misc]
    assert g > r and g > b  # drawn on the green reference


def test_flux_cannot_edit_where_bfl_cannot(gateway: Gateway) -> None:
    r = httpx.post(
        gateway.api + "/images/edits",
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        data={"model": "flux-dev", "prompt": "x"},
        files={"image": ("a.png", _png((32, 32), (1, 2, 3)), "image/png")},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_supported"
