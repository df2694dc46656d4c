"""What the upstream receives: the client's own bytes when the gateway changes nothing, the
mapped model name and the usage request on streams otherwise; unknown fields always pass."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Gateway, channel_spec, running

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-rec",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()
STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
    b"data: [DONE]\n\n"
)


class Recorder:
    """An upstream that keeps the body of every request and answers a canned completion."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.bodies.append(body)
                stream = json.loads(body).get("stream") is True
                answer, ctype = (
                    (STREAM, b"text/event-stream") if stream else (COMPLETION, b"application/json")
                )
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                    % (ctype, len(answer), answer)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.port = server.sockets[0].getsockname()[1]
    yield rec
    server.close()


async def test_the_upstream_gets_the_clients_bytes_unless_something_changes(
    recorder: Recorder, tmp_path: Path
) -> None:
    gw = Gateway(tmp_path / "gw", AITRE_SIMULATOR_ENABLED="false")
    base = f"http://127.0.0.1:{recorder.port}/v1"
    gw.apply(
        {
            "prices": {"*": {"per_call": "0.001"}},
            "channels": [
                channel_spec("same", base, "plain-model"),
                channel_spec("mapped", base, "alias", "real"),
            ],
        }
    )
    with running(gw):
        await asyncio.to_thread(gw.start)
        headers = {"Authorization": f"Bearer {gw.user_key}", "Content-Type": "application/json"}
        # Odd spacing, key order and a field the gateway knows nothing about.
        raw = (
            b'{ "x_vendor_flag" : [1, 2],"model":"plain-model" ,"messages":[{"role":"user","content":"hi"}] }'
        )
        mapped = raw.replace(b'"plain-model"', b'"alias"')
        stream = b'{"model":"plain-model","stream":true,"messages":[{"role":"user","content":"hi"}]}'
        asked = b'{"model":"plain-model","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
        asked = asked.replace(b'"messages":[]', b'"messages":[{"role":"user","content":"hi"}]')
        async with httpx.AsyncClient(base_url=gw.api, headers=headers, timeout=30) as http:
            for body in (raw, mapped, stream, asked):
                resp = await http.post("/chat/completions", content=body)
                assert resp.status_code == 200, resp.text
    same, renamed, injected, untouched = recorder.bodies
    assert same == raw  # byte for byte
    sent = json.loads(renamed)
    assert sent["model"] == "real" and sent["x_vendor_flag"] == [1, 2]
    assert json.loads(injected)["stream_options"] == {
        "include_usage": True
    }  # asked for on the client's behalf
    assert untouched == asked  # the client asked for usage itself: nothing to change
