"""Reading a Sora-by-chat upstream's answer: its progress and, at the end, the video's link, out of
chat completion chunks written for people.

Upstreams were seen to write it in several ways (docs: upstream-protocols.md, "Chat-format Sora
wrapper"), and this reader takes any mix of them:
- progress in `delta.content` quote lines (`> 进度 76..`, `>🏃 Progress 40%`, `> progress 37%`) or
  in `delta.reasoning_content` (`**Video Generation Progress**: 45% (processing)`);
- the upstream's own job id in a line `> ID: \\`task_...\\``;
- the video as a markdown link (`[click here](https://.../x.mp4)`), an HTML `<video src='...'>`,
  or a bare link; a link to a video file wins over other links, the last one over earlier ones;
- a failure as an `{"error": {...}}` event, or an answer that ends with no link (its last line
  says why);
- the whole answer as one `chat.completion` (an upstream that does not stream).

Text inside code fences (an echo of the order's JSON) is not read for progress: a prompt may say
"50%". Everything is bounded: one event (`relay.sse.MAX_EVENT_BYTES`), one line, the lines kept.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import orjson

from aitre.relay.sse import EventSplitter, split_events

MAX_LINE = 64 * 1024  # a longer "line" is read in pieces
MAX_URL = 4096
_VIDEO_EXT = (".mp4", ".webm", ".mov", ".m4v")
_PROGRESS = (
    re.compile(r"进度\D{0,8}?(\d{1,3}(?:\.\d+)?)"),
    re.compile(r"progress\b\D{0,24}?(\d{1,3}(?:\.\d+)?)\s*%", re.IGNORECASE),
)
_QUOTE_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")
_MARKDOWN = re.compile(r"(!?)\[[^\]]{0,500}\]\(\s*<?(https?://[^)\s>]+)>?\s*\)")
_HTML_SRC = re.compile(r"<(?:video|source)\b[^>]*?\bsrc\s*=\s*[\"']?(https?://[^\"'\s>]+)", re.IGNORECASE)
_BARE = re.compile(r"https?://[^\s<>\"'`()\[\]]+")
_TASK_ID = re.compile(r"\bID\s*[:：]\s*`?([A-Za-z0-9][A-Za-z0-9_\-.:]{2,127})`?")


def is_video_url(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(_VIDEO_EXT)


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


class ChatVideoStream:
    """Feed it the answer's bytes (`feed`) or a whole JSON answer (`feed_answer`), then `end()`."""

    def __init__(self) -> None:
        self._events = EventSplitter()
        self._partial: dict[str, str] = {"content": "", "reasoning": ""}
        self._fenced = {"content": False, "reasoning": False}
        self.progress = 0
        self.upstream_task: str | None = None
        self.error: str | None = None
        self.error_code: str | None = None
        self.done = False  # `[DONE]` came
        self.finished = False  # a choice said its finish_reason
        self._video: str | None = None  # the last link to a video file
        self._other: str | None = None  # the last link of any other kind (not an image)
        self.lines: deque[str] = deque(maxlen=8)  # the last lines of content, for a failure's reason

    @property
    def url(self) -> str | None:
        return self._video or self._other

    # --- input ------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes of an SSE answer. Raises `relay.sse.EventTooLarge`."""
        block = self._events.feed(data)
        if block:
            for event in split_events(block):
                self._event(event)

    def feed_answer(self, raw: bytes) -> None:
        """A whole JSON answer (an upstream that did not stream)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.error = "the upstream answered with something that is not JSON"
            return
        self._object(data)
        self.done = True

    def end(self) -> None:
        """The answer is over: read what is left of unfinished lines."""
        for channel, rest in self._partial.items():
            if rest:
                self._line(channel, rest)
            self._partial[channel] = ""

    # --- events -------------------------------------------------------------------------------------
    def _event(self, event: bytes) -> None:
        data: list[bytes] = []
        for raw in event.splitlines():
            if raw.startswith(b"data:"):
                data.append(raw[5:].lstrip(b" "))
        if not data:
            return  # a comment (keep-alive) or an empty event
        payload = b"\n".join(data)
        if payload.strip() == b"[DONE]":
            self.done = True
            return
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # not ours to judge: a stray line
        self._object(obj)

    def _object(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        error = obj.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            self.error = str(message or "the upstream reported an error")[:1000]
            code = error.get("code") if isinstance(error, dict) else None
            self.error_code = str(code)[:64] if code else None
            return
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            for holder in (choice.get("delta"), choice.get("message")):
                if isinstance(holder, dict):
                    self._text("content", _text_of(holder.get("content")))
                    self._text("reasoning", _text_of(holder.get("reasoning_content")))
            if choice.get("finish_reason"):
                self.finished = True

    # --- text ---------------------------------------------------------------------------------------
    def _text(self, channel: str, text: str) -> None:
        if not text:
            return
        pending = self._partial[channel] + text
        *whole, rest = pending.split("\n")
        for line in whole:
            self._line(channel, line)
        while len(rest) > MAX_LINE:
            self._line(channel, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self._partial[channel] = rest

    def _line(self, channel: str, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith("```"):
            self._fenced[channel] = not self._fenced[channel]
            rest = stripped[3:]
            if not rest or rest.isalnum():
                return  # a fence (with its language)
        fenced = self._fenced[channel]
        # In a fenced block only a `<video>` counts: other links there echo the order (the
        # client's own video, for a removal), not the answer.
        self._links(stripped, html_only=fenced)
        if not stripped:
            return
        if channel == "content":
            self.lines.append(stripped[:500])
        if fenced:
            return
        found = _TASK_ID.search(stripped)
        if found and self.upstream_task is None:
            self.upstream_task = found.group(1)
        self._progress(stripped)

    def _progress(self, line: str) -> None:
        value: str | None = None
        for pattern in _PROGRESS:
            found = pattern.search(line)
            if found:
                value = found.group(1)
                break
        if value is None and line.startswith(">"):
            every = _QUOTE_PERCENT.findall(line)
            value = every[-1] if every else None
        if value is not None:
            self.progress = max(self.progress, min(99, int(float(value))))

    def _links(self, line: str, html_only: bool) -> None:
        if "http" not in line:
            return
        for url in _HTML_SRC.findall(line):
            self._link(url)
        if html_only:
            return
        taken: list[str] = _HTML_SRC.findall(line)
        for image, url in _MARKDOWN.findall(line):
            taken.append(url)
            if not image:
                self._link(url)
        for match in _BARE.finditer(line):
            url = match.group(0).rstrip(".,;:!?")
            if not any(url in t or t in url for t in taken) and is_video_url(url):
                self._link(url)

    def _link(self, url: str) -> None:
        if len(url) > MAX_URL:
            return
        if is_video_url(url):
            self._video = url
        else:
            self._other = url

    # --- the outcome --------------------------------------------------------------------------------
    def failure(self) -> str:
        """Why the answer has no video, from what it said."""
        if self.error:
            return self.error
        said = next((line for line in reversed(self.lines) if line), "")
        said = said.lstrip("> ").strip()
        return f"the upstream ended its answer without a video link{': ' + said if said else ''}"
