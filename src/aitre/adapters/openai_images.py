"""Images through OpenAI's images API (`/images/generations`, `/images/edits`): the request goes
as the client gave it (model mapped), and every field of the answer is kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aitre.adapters import openai_wire
from aitre.adapters.images import IMAGE_LIMIT, Image, ImageRequest, Images, bad_upstream
from aitre.relay.job import FormField
from aitre.relay.upstream import UpstreamRequest
from aitre.relay.usage import Usage, usage_from_dict

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

# b64_json answers are a third larger than the images; a few of them at once.
_ANSWER_LIMIT = IMAGE_LIMIT * 2


async def generate(state: AppState, job: RelayJob, channel: ChannelInfo, request: ImageRequest) -> Images:
    body = {"model": job.upstream_model(channel), **{k: v for k, v in request.fields.items() if k != "model"}}
    req = openai_wire.post_json(channel, job, "/images/generations", body)
    return parse(await openai_wire.call_json(state, job, channel, req, _ANSWER_LIMIT))


async def edit(state: AppState, job: RelayJob, channel: ChannelInfo, request: ImageRequest) -> Images:
    model = job.upstream_model(channel)
    form = request.form if request.form is not None else _form(request)
    headers = openai_wire.headers(channel, job)
    headers["Content-Type"], body = openai_wire.rebuild_form(form, model)
    req = UpstreamRequest("POST", channel.api_base() + "/images/edits", headers, body)
    return parse(await openai_wire.call_json(state, job, channel, req, _ANSWER_LIMIT))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _form(request: ImageRequest) -> list[FormField]:
    """An edit that did not come as a multipart request (image by chat with references)."""
    form: list[FormField] = [("model", "")]
    form += [
        (k, _text(v)) for k, v in request.fields.items() if v is not None and not isinstance(v, dict | list)
    ]
    name = "image" if len(request.references) == 1 else "image[]"
    form += [(name, ref) for ref in request.references]
    if request.mask is not None:
        form.append(("mask", request.mask))
    return form


def parse(data: dict[str, Any]) -> Images:
    items = []
    for item in data.get("data") or ():
        if not isinstance(item, dict):
            continue
        extra = {k: v for k, v in item.items() if k not in ("b64_json", "url")}
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            items.append(Image(b64=item["b64_json"], extra=extra))
        elif isinstance(item.get("url"), str) and item["url"]:
            items.append(Image(url=item["url"], extra=extra))
    if not items:
        raise bad_upstream("the upstream answered without an image")
    usage = usage_from_dict(data.get("usage")) or Usage()
    return Images(items, usage, extra={k: v for k, v in data.items() if k != "data"})
