"""What a chat request for a video or a removal asks for: read from its last user message,
bounded, checked before anything is reserved.

- A video: the text is the prompt; one `image_url` part (a URL or a data URI) is the first frame.
  The image is fetched through the guarded fetcher and kept in the media store (a task keeps
  media names, not bytes).
- A removal: the first URL in the message (a `video_url` or `image_url` part, or a link in the
  text): a Sora share link or a direct video link. It is fetched when the task runs (the local
  engine) or passed to the upstream (a `chat-video` channel); here it is only checked to be an
  http(s) URL that is not a literal private address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aitre.errors import bad_request
from aitre.media.fetch import FetchRefused
from aitre.media.kinds import content_type, is_image, sniff
from aitre.security.ssrf import literal_ip

if TYPE_CHECKING:
    from aitre.media.store import StoredMedia
    from aitre.state import AppState

MAX_URL = 4096
# a link in text: a host (a bracketed IPv6 address too), then anything up to a space or a bracket
_URL = re.compile(r"https?://(?:\[[0-9A-Fa-f:.]+\]|[^\s<>\"'`()\[\]/]+)[^\s<>\"'`()\[\]]*")
_TRAILING = ".,;:!?。，"


@dataclass(slots=True)
class Message:
    text: str
    images: list[str]
    videos: list[str]


def last_user_message(messages: list[Any]) -> Message:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _read(message.get("content"))
    raise bad_request("The request needs a user message.", param="messages")


def _read(content: Any) -> Message:
    if isinstance(content, str):
        return Message(content.strip(), [], [])
    if not isinstance(content, list):
        raise bad_request("A message's `content` is a string or an array of parts.", param="messages")
    texts: list[str] = []
    found: dict[str, list[str]] = {"image_url": [], "video_url": []}
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"].strip())
        elif kind in found:
            link = part.get(kind)
            url = link.get("url") if isinstance(link, dict) else link
            if not isinstance(url, str) or not url:
                raise bad_request(f"An `{kind}` part needs a `url`.", param="messages")
            found[kind].append(url)
    return Message(" ".join(t for t in texts if t), found["image_url"], found["video_url"])


def prompt_of(state: AppState, message: Message, required: bool = True) -> str:
    limit = state.settings.chat_task_max_prompt_chars
    if len(message.text) > limit:
        raise bad_request(f"The prompt is longer than {limit} characters.", param="messages")
    if required and not message.text:
        raise bad_request("The last user message needs text saying what the video shows.", param="messages")
    return message.text


def check_url(state: AppState, url: str) -> str:
    """An http(s) URL, bounded, whose host is not a literal address the gateway may not fetch
    (a name is checked when it is fetched: it resolves then)."""
    if len(url) > MAX_URL:
        raise bad_request(f"The URL is longer than {MAX_URL} characters.", param="messages")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("only http(s) links to a video can be used", "messages")
    ip = literal_ip(parts.hostname)
    if ip is not None and not state.fetcher.policy.permits(ip):
        raise FetchRefused(f"refusing to fetch {url[:200]}: the address is not public", "messages")
    return url


def video_link(state: AppState, message: Message) -> str:
    """The video a removal is for: the first linked part, else the first link in the text."""
    links = message.videos + message.images
    if not links:
        links = [m.group(0).rstrip(_TRAILING) for m in _URL.finditer(message.text)]
    if not links:
        raise bad_request(
            "Put the link of the Sora video (a share link or the video's URL) in the last user message.",
            param="messages",
        )
    return check_url(state, links[0])


def check_images(state: AppState, message: Message) -> None:
    """What can be told of the reference image before fetching it."""
    if message.videos:
        raise bad_request("A video is made from text and at most one image, not a video.", param="messages")
    if len(message.images) > 1:
        raise bad_request("A video starts from one image: send at most one `image_url`.", param="messages")
    if message.images and not message.images[0].startswith("data:"):
        check_url(state, message.images[0])


def own_media_name(state: AppState, url: str) -> str | None:
    """The media-store name behind a link to this gateway's own `/media/...` (its public URL):
    read from the store, not fetched (behind a load balancer the public name may resolve to an
    address the guarded fetcher refuses)."""
    prefix = state.media.url("")
    if not url.startswith(prefix):
        return None
    name = url[len(prefix) :].split("?", 1)[0]
    return name if "/" not in name and name else None


async def read_own_media(state: AppState, url: str, limit: int) -> bytes | None:
    """The bytes of one of this gateway's own files the URL links to (None: not one of ours)."""
    name = own_media_name(state, url)
    info = await state.media.stat(name) if name else None
    if name is None or info is None:
        return None
    if info.size > limit:
        raise FetchRefused(f"{url[:200]} is larger than {limit} bytes", "messages")
    chunks = await state.media.open(name)
    return None if chunks is None else b"".join([chunk async for chunk in chunks])


async def reference_image(state: AppState, message: Message) -> StoredMedia | None:
    """The first frame of an image-to-video request, fetched and kept (None: text only)."""
    if not message.images:
        return None
    url = message.images[0]
    data = await read_own_media(state, url, state.fetcher.max_bytes)
    if data is None:
        data = (await state.fetcher.fetch(url, param="messages")).data
    ext = sniff(data)
    if not is_image(ext):
        raise FetchRefused("the image_url is not a PNG, JPEG, WEBP or GIF image", "messages")
    return await state.media.save(data, ext)


def reference_doc(stored: StoredMedia | None) -> dict[str, str] | None:
    if stored is None:
        return None
    ext = stored.name.rsplit(".", 1)[-1]
    return {"media": stored.name, "content_type": content_type(ext)}
