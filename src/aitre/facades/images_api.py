"""OpenAI's images API (`/v1/images/generations`, `/v1/images/edits`) over any channel that
makes images of the model, whatever it speaks: OpenAI's images API, an image model answering
chat (Gemini), BFL's task API (Flux). The images come back in OpenAI's images answer: the
upstream's other fields kept, links to our media store (upstream links expire), or base64 when
the client asked for `b64_json`."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import orjson

from aitre.adapters.images import Image, ImageMaker, ImageRequest, Images, all_or_nothing, image_bytes
from aitre.relay.cancel import unless_disconnected
from aitre.relay.outcome import finish, waiting
from aitre.relay.pipeline import admit, ensure_routable, filters, piece, with_failover
from aitre.relay.respond import BodyResponse

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState


async def images_api(state: AppState, job: RelayJob, request: ImageRequest) -> BodyResponse:
    route = filters(state, job)
    first = ensure_routable(state, job, route)
    await admit(state, job)

    async def attempt(channel: ChannelInfo) -> BodyResponse:
        make: ImageMaker | None = piece(state, channel, route[2])
        if make is None:  # the router only picks channels that serve the capability
            raise RuntimeError(f"channel {channel.id} was picked for {route[2][0]} but makes no images")
        images = await waiting(job, make(state, job, channel, request))
        answer = await _answer(state, channel, request, images)
        usage = job.known_units.merged(images.usage)
        usage.images = len(images.items)
        finish(state, job, channel, 200, "", usage)
        return BodyResponse(orjson.dumps(answer), 200, "application/json", job.request_id)

    return await unless_disconnected(job.receive, with_failover(state, job, attempt, first, route))


async def _answer(
    state: AppState, channel: ChannelInfo, request: ImageRequest, images: Images
) -> dict[str, Any]:
    want_b64, rehost = request.wants_b64, state.settings.rehost_images

    async def item(image: Image) -> dict[str, Any]:
        if image.b64 is not None:  # as the upstream sent it, whatever was asked (gpt-image-1 does so)
            shaped: dict[str, Any] = {"b64_json": image.b64}
        elif want_b64:
            shaped = {"b64_json": base64.b64encode(await image_bytes(state, channel, image)).decode()}
        elif image.url is not None and image.url.startswith("http") and not rehost:
            shaped = {"url": image.url}
        else:
            shaped = {"url": (await state.media.save(await image_bytes(state, channel, image))).url}
        shaped.update(image.extra)
        return shaped

    data = await all_or_nothing([item(i) for i in images.items])
    return {"created": int(time.time()), **images.extra, "data": data}
