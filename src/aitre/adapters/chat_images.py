"""Images from an image model that answers chat completions (Gemini's image models, and the
relays that sell gpt-4o-image that way): the prompt and references go as a chat message, the
images come back as markdown links or data URIs in the content, or OpenRouter-style in
`message.images`."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from aitre.adapters import openai_wire
from aitre.adapters.images import IMAGE_LIMIT, Image, ImageRequest, Images, all_or_nothing, bad_upstream
from aitre.media.kinds import sniff
from aitre.relay.usage import Usage, usage_from_dict

if TYPE_CHECKING:
    from aitre.channels.model import ChannelInfo
    from aitre.relay.job import RelayJob
    from aitre.state import AppState

MARKDOWN_IMAGE = re.compile(r"!\[([^\]]*)\]\(((?:data:image/[^)\s]+)|(?:https?://[^)\s]+))\)")
_ANSWER_LIMIT = IMAGE_LIMIT * 2


async def make(state: AppState, job: RelayJob, channel: ChannelInfo, request: ImageRequest) -> Images:
    body = _chat_body(job.upstream_model(channel), request)
    # One image per chat answer; a client's own chat asked for one answer.
    n = 1 if request.chat is not None else request.n
    answers = await all_or_nothing([_one(state, job, channel, body) for _ in range(n)])
    if len(answers) == 1:
        return answers[0]
    usage = Usage(
        prompt_tokens=sum(a.usage.prompt_tokens for a in answers),
        completion_tokens=sum(a.usage.completion_tokens for a in answers),
    )
    return Images([i for a in answers for i in a.items], usage, answers[0].text)


def _chat_body(model: str, request: ImageRequest) -> dict[str, Any]:
    if request.chat is not None:
        return {**request.chat, "model": model, "stream": False}
    content: str | list[dict[str, Any]] = request.prompt
    if request.references:
        content = [{"type": "text", "text": request.prompt}]
        for ref in request.references:
            uri = f"data:image/{_subtype(ref.data)};base64,{base64.b64encode(ref.data).decode()}"
            content.append({"type": "image_url", "image_url": {"url": uri}})
    return {"model": model, "messages": [{"role": "user", "content": content}], "stream": False}


def _subtype(data: bytes) -> str:
    ext = sniff(data)
    return "jpeg" if ext == "jpg" else ext if ext != "bin" else "png"


async def _one(state: AppState, job: RelayJob, channel: ChannelInfo, body: dict[str, Any]) -> Images:
    req = openai_wire.post_json(channel, job, "/chat/completions", body)
    return parse(await openai_wire.call_json(state, job, channel, req, _ANSWER_LIMIT))


def parse(data: dict[str, Any]) -> Images:
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    found = [m.group(2) for m in MARKDOWN_IMAGE.finditer(text)]
    for img in message.get("images") or ():
        url = img.get("image_url") if isinstance(img, dict) else None
        url = url.get("url") if isinstance(url, dict) else url
        if isinstance(url, str) and url and url not in found:
            found.append(url)
    if not found:
        raise bad_upstream("the image model answered without an image")
    caption = MARKDOWN_IMAGE.sub("", text).strip()
    return Images([Image(url=u) for u in found], usage_from_dict(data.get("usage")) or Usage(), caption)
