"""`POST /v1/images/generations`, `POST /v1/images/edits`, and `GET /files/{name}`, which
serves the images handed out as URLs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from PIL import Image
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator import catalog
from aitre.simulator.common import (
    SimEvent,
    authorized,
    bad_request,
    begin,
    error,
    json_answer,
    json_body,
    sim,
    sim_url,
    unauthorized,
    unknown_model,
)
from aitre.simulator.faults import Fault
from aitre.simulator.files import media_type
from aitre.simulator.forms import Form, read_form
from aitre.simulator.images import (
    ImageJob,
    Invalid,
    UnknownModel,
    gpt_usage,
    input_image_tokens,
    parse_job,
    revised_prompt,
)
from aitre.simulator.png import BadImage, Canvas, b64, open_image, render

MAX_UPLOAD = 64 * 1024 * 1024
MAX_EDIT_IMAGES = 16


def _parse(fields: Mapping[str, Any], models: tuple[str, ...]) -> ImageJob | Response:
    try:
        return parse_job(fields, models)
    except UnknownModel as exc:
        return unknown_model(exc)
    except Invalid as exc:
        return bad_request(str(exc), exc.param)


def _canvas(job: ImageJob, index: int, kind: str) -> Canvas:
    return Canvas(
        job.prompt,
        job.width,
        job.height,
        seed=f"{job.model}\x00{index}\x00{kind}",
        transparent=job.transparent,
        fmt=job.fmt,
        quality=max(1, min(95, job.compression)),
    )


async def _answer(
    request: Request, job: ImageJob, images: list[bytes], image_tokens: int, fault: Fault, ev: SimEvent
) -> Response:
    data: list[dict[str, Any]] = []
    for img in images:
        if job.want_b64:
            item = {"b64_json": b64(img)}
        else:
            item = {"url": sim_url(request, "/files/" + sim(request).files.save(img, job.fmt))}
        if job.model == "dall-e-3":
            item["revised_prompt"] = revised_prompt(job)
        data.append(item)
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if job.gpt:
        answer.update(background=job.background, output_format=job.fmt, quality=job.quality, size=job.size)
        if not fault.no_usage:
            text_tokens = await asyncio.to_thread(sim(request).tokenizer.count, job.prompt, "gpt-4o")
            answer["usage"] = gpt_usage(job, text_tokens, image_tokens)
    return json_answer(answer, fault, ev)


async def generations(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    job = _parse(body, catalog.IMAGE_MODELS)
    if isinstance(job, Response):
        return job
    started = await begin(request, job.model, False)
    if isinstance(started, Response):
        return started
    ev, fault = started

    def work() -> list[bytes]:
        return [render(_canvas(job, i, "generation")) for i in range(job.n)]

    return await _answer(request, job, await asyncio.to_thread(work), 0, fault, ev)


def _edit_inputs(form: Form, job: ImageJob) -> tuple[list[Image.Image], Image.Image | None] | Response:
    """Decode the uploads (in a worker thread): the images, then the optional mask."""
    uploads = form.uploads("image", "image[]")
    if not uploads:
        if "image" in form.fields or "image[]" in form.fields:
            return bad_request("`image` must be uploaded as a file.", "image")
        return bad_request("`image` is required: upload the image to edit as a file.", "image")
    limit = MAX_EDIT_IMAGES if job.gpt else 1
    if len(uploads) > limit:
        return bad_request(f"{job.model} takes at most {limit} input image(s).", "image")
    images = []
    for upload in uploads:
        try:
            images.append(open_image(upload.data))
        except BadImage as exc:
            return bad_request(f"Invalid image file {upload.filename!r}: {exc}.", "image")
    masks = form.uploads("mask")
    if not masks:
        return images, None
    try:
        mask = open_image(masks[0].data)
    except BadImage as exc:
        return bad_request(f"Invalid mask file {masks[0].filename!r}: {exc}.", "mask")
    if mask.size != images[0].size:
        return bad_request("The mask must have the same size as the image.", "mask")
    return images, mask


async def edits(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    form = await read_form(request, MAX_UPLOAD)
    if isinstance(form, Response):
        return form
    job = _parse(form.fields, catalog.IMAGE_EDIT_MODELS)
    if isinstance(job, Response):
        return job
    inputs = await asyncio.to_thread(_edit_inputs, form, job)
    if isinstance(inputs, Response):
        return inputs
    images, mask = inputs
    started = await begin(request, job.model, False)
    if isinstance(started, Response):
        return started
    ev, fault = started

    def work() -> list[bytes]:
        return [render(_canvas(job, i, "edit"), images[0], mask, images[1:]) for i in range(job.n)]

    image_tokens = sum(input_image_tokens(*img.size) for img in images)
    return await _answer(request, job, await asyncio.to_thread(work), image_tokens, fault, ev)


async def get_file(request: Request) -> Response:
    name = request.path_params["name"]
    data = sim(request).files.get(name)
    if data is None:
        return error(404, "This file does not exist or has expired.", "file_not_found")
    return Response(data, media_type=media_type(name), headers={"cache-control": "private, max-age=3600"})
