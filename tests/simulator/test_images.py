"""`/v1/images/generations` and `/v1/images/edits`: real images at the requested size."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from tests.simulator.media import b64_image_info, image_info, png_bytes


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("dall-e-2", "256x256"),
        ("dall-e-2", "512x512"),
        ("dall-e-3", "1792x1024"),
        ("dall-e-3", "1024x1792"),
        ("gpt-image-1", "1536x1024"),
        ("gpt-image-1-mini", "1024x1536"),
        ("gpt-4o-image", "1024x1024"),
        ("gpt-4o-all", "auto"),
    ],
)
def test_sizes(sdk: openai.OpenAI, model: str, size: str) -> None:
    resp = sdk.images.generate(
        model=model, prompt="a lighthouse at dusk", size=size, response_format="b64_json"
    )  # type: ignore[arg-type]
    assert resp.data is not None and len(resp.data) == 1
    fmt, got, _ = b64_image_info(resp.data[0].b64_json or "")
    expected = "1024x1024" if size == "auto" else size
    assert fmt == "PNG" and f"{got[0]}x{got[1]}" == expected


def test_gpt_image_usage_and_fields(sdk: openai.OpenAI) -> None:
    resp = sdk.images.generate(model="gpt-image-1", prompt="a red fox", quality="low", size="1024x1024")
    assert (resp.background, resp.output_format, resp.quality, resp.size) == (
        "opaque",
        "png",
        "low",
        "1024x1024",
    )
    assert resp.usage is not None
    assert resp.usage.output_tokens == 272
    assert resp.usage.input_tokens_details.text_tokens == 3
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    medium = sdk.images.generate(model="gpt-image-1", prompt="a red fox", quality="medium", n=2)
    assert medium.usage is not None and medium.usage.output_tokens == 2 * 1056
    assert medium.data is not None and medium.data[0].b64_json != medium.data[1].b64_json


@pytest.mark.parametrize(
    ("fmt", "pil", "mode"), [("png", "PNG", "RGBA"), ("webp", "WEBP", "RGBA"), ("jpeg", "JPEG", "RGB")]
)
def test_output_formats_and_transparency(sdk: openai.OpenAI, fmt: str, pil: str, mode: str) -> None:
    background = "opaque" if fmt == "jpeg" else "transparent"
    resp = sdk.images.generate(
        model="gpt-image-1",
        prompt="a sticker of a cat",
        output_format=fmt,
        background=background,  # type: ignore[arg-type]
    )
    assert resp.data is not None and resp.output_format == fmt and resp.background == background
    assert b64_image_info(resp.data[0].b64_json or "") == (pil, (1024, 1024), mode)


def test_dalle3_url_and_revised_prompt(sdk: openai.OpenAI, http: httpx.Client) -> None:
    resp = sdk.images.generate(model="dall-e-3", prompt="a castle", quality="hd", style="natural")
    assert resp.data is not None
    item = resp.data[0]
    assert item.b64_json is None and item.url and item.url.startswith(http.base_url.scheme + "://")
    assert item.revised_prompt and "a castle" in item.revised_prompt
    got = httpx.get(item.url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert image_info(got.content)[:2] == ("PNG", (1024, 1024))


def test_dalle2_n_and_determinism(sdk: openai.OpenAI) -> None:
    resp = sdk.images.generate(
        model="dall-e-2", prompt="a boat", n=3, size="256x256", response_format="b64_json"
    )
    again = sdk.images.generate(
        model="dall-e-2", prompt="a boat", n=3, size="256x256", response_format="b64_json"
    )
    assert resp.data is not None and again.data is not None
    images = [d.b64_json for d in resp.data]
    assert len(set(images)) == 3
    assert images == [d.b64_json for d in again.data]
    other = sdk.images.generate(model="dall-e-2", prompt="a car", size="256x256", response_format="b64_json")
    assert other.data is not None and other.data[0].b64_json not in images


@pytest.mark.parametrize(
    "body",
    [
        {"model": "dall-e-2", "prompt": "x", "size": "1024x1792"},
        {"model": "dall-e-3", "prompt": "x", "size": "512x512"},
        {"model": "gpt-image-1", "prompt": "x", "size": "1792x1024"},
        {"model": "dall-e-3", "prompt": "x", "n": 2},
        {"model": "dall-e-2", "prompt": "x", "n": 11},
        {"model": "gpt-image-1", "prompt": "x", "background": "transparent", "output_format": "jpeg"},
        {"model": "gpt-image-1", "prompt": "x", "quality": "hd"},
        {"model": "dall-e-3", "prompt": "x", "response_format": "png"},
        {"model": "dall-e-2"},
    ],
)
def test_bad_requests_are_400(http: httpx.Client, body: dict[str, object]) -> None:
    r = http.post("/v1/images/generations", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_and_fault(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        sdk.images.generate(model="dall-e-4", prompt="x")
    assert exc.value.code == "model_not_found"
    with pytest.raises(openai.InternalServerError):
        sdk.images.generate(model="dall-e-2", prompt="x", extra_headers={"x-sim-fault": "status=503"})


def test_edit_single_image_with_mask(sdk: openai.OpenAI, http: httpx.Client) -> None:
    source = png_bytes((300, 200), (10, 200, 10, 255))
    mask = png_bytes((300, 200), (0, 0, 0, 0))
    resp = sdk.images.edit(
        model="dall-e-2",
        image=("in.png", source),
        mask=("mask.png", mask),
        prompt="add a sun",
        size="512x512",
    )
    assert resp.data is not None and resp.data[0].url
    got = http.get(resp.data[0].url)
    fmt, size, _ = image_info(got.content)
    assert (fmt, size) == ("PNG", (512, 512))


def test_edit_several_images_gpt(sdk: openai.OpenAI) -> None:
    images = [
        ("a.png", png_bytes((64, 64), (255, 0, 0, 255))),
        ("b.png", png_bytes((80, 40), (0, 0, 255, 255))),
    ]
    resp = sdk.images.edit(
        model="gpt-image-1", image=images, prompt="blend them", size="1536x1024", output_format="webp"
    )
    assert resp.data is not None and resp.usage is not None
    assert b64_image_info(resp.data[0].b64_json or "")[:2] == ("WEBP", (1536, 1024))
    assert resp.usage.input_tokens_details.image_tokens > 0
    # Derived from the input: the red source shows through the tint.
    single = sdk.images.edit(model="gpt-4o-image", image=images[0], prompt="x", quality="low")
    assert single.data is not None
    with Image.open(io.BytesIO(base64.b64decode(single.data[0].b64_json or ""))) as img:
        r, g, b = img.convert("RGB").getpixel((512, 400))  # type: ignore[misc]
    assert r > 150 and g < 120 and b < 120


def test_edit_bad_uploads(http: httpx.Client) -> None:
    r = http.post(
        "/v1/images/edits", data={"model": "dall-e-2", "prompt": "x"}, files={"mask": ("m.png", png_bytes())}
    )
    assert r.status_code == 400 and "image" in r.json()["error"]["message"]
    r = http.post(
        "/v1/images/edits",
        data={"model": "dall-e-2", "prompt": "x"},
        files={"image": ("a.png", b"not a png")},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    mask = png_bytes((10, 10))
    r = http.post(
        "/v1/images/edits",
        data={"model": "dall-e-2", "prompt": "x"},
        files={"image": ("a.png", png_bytes((20, 20))), "mask": ("m.png", mask)},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "mask"
    r = http.post(
        "/v1/images/edits", data={"model": "dall-e-3", "prompt": "x"}, files={"image": ("a.png", png_bytes())}
    )
    assert r.status_code == 404
    r = http.post("/v1/images/edits", json={"model": "dall-e-2", "prompt": "x"})
    assert r.status_code == 400


def test_edit_fault(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk.images.edit(
            model="gpt-image-1",
            image=("a.png", png_bytes()),
            prompt="x",
            extra_headers={"x-sim-fault": "status=429,retry_after=1"},
        )


def test_missing_file_is_404(http: httpx.Client) -> None:
    r = http.get("/files/0123456789abcdef.png")
    assert r.status_code == 404
