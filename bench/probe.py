"""A minimal HTTP/1.1 client that times the first body byte of each response, and the TTFB probe
built on it (`python -m bench.probe ...`, run by the harness next to wrk for stream cells).

Why not h2load (`--h1`)? Its "time to 1st byte" is per *connection* (from connect to the first
byte the connection receives), so with keep-alive it describes a handful of first requests and
gives no percentiles. wrk times whole responses only. So the probe is our own: one keep-alive
connection, raw asyncio protocol on uvloop, timestamps taken in `data_received` with
`perf_counter`, at a modest paced rate so that its own cost is negligible next to wrk's load.
TTFB here is request written -> first byte of the *body* (for a stream: the first SSE event),
which is what a client waiting for its first token sees; a gateway that sends headers early but
the first event late is not flattered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from bench import canned


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    ttfb: float  # seconds: request written -> first body byte
    total: float  # seconds: request written -> last body byte


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[Reply] | None = None
        self._reset(0.0)

    def _reset(self, t0: float) -> None:
        self._t0 = t0
        self._t_first: float | None = None
        self._buf = bytearray()
        self._head_done = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunked = False
        self._length: int | None = None
        self._state = "size"  # chunked decoder: size | data | crlf | trailer
        self._chunk_left = 0
        self._body = bytearray()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed before the response ended"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self._waiter is None or self._waiter.done():
            return
        self._buf += data
        try:
            if not self._head_done and not self._parse_head():
                return
            before = len(self._body)
            done = self._feed_body()
        except ValueError as exc:
            self._waiter.set_exception(exc)
            return
        if self._t_first is None and len(self._body) > before:
            self._t_first = now
        if done:
            ttfb = (self._t_first or now) - self._t0
            self._waiter.set_result(
                Reply(self._status, self._headers, bytes(self._body), ttfb, now - self._t0)
            )
            if self._headers.get("connection", "").lower() == "close" and self.transport is not None:
                self.transport.close()

    # parsing
    def _parse_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {lines[0]!r}")
        self._status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self._headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        if not self._chunked:
            if "content-length" not in self._headers:
                raise ValueError("response has neither Content-Length nor chunked encoding")
            self._length = int(self._headers["content-length"])
        self._head_done = True
        return True

    def _feed_body(self) -> bool:
        if not self._chunked:
            assert self._length is not None
            take = self._length - len(self._body)
            self._body += self._buf[:take]
            del self._buf[:take]
            return len(self._body) >= self._length
        buf = self._buf
        while True:
            if self._state == "size":
                i = buf.find(b"\r\n")
                if i < 0:
                    return False
                size = int(bytes(buf[:i]).split(b";")[0], 16)
                del buf[: i + 2]
                self._chunk_left, self._state = size, ("data" if size else "trailer")
            elif self._state == "data":
                if not buf:
                    return False
                take = min(self._chunk_left, len(buf))
                self._body += buf[:take]
                del buf[:take]
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._state = "crlf"
            elif self._state == "crlf":
                if len(buf) < 2:
                    return False
                del buf[:2]
                self._state = "size"
            else:  # trailer section: lines until an empty one
                i = buf.find(b"\r\n")
                if i < 0:
                    return False
                del buf[: i + 2]
                if i == 0:
                    return True

    def send(self, data: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self._reset(time.perf_counter())
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter


def build_request(url: str, headers: dict[str, str], body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connect(host: str, port: int) -> _Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Conn, host, port)
    return conn


async def request_once(url: str, headers: dict[str, str], body: bytes, limit_s: float = 30.0) -> Reply:
    host, port, raw = build_request(url, headers, body)
    conn = await _connect(host, port)
    try:
        return await asyncio.wait_for(conn.send(raw), limit_s)
    finally:
        if conn.transport is not None:
            conn.transport.close()


# Response checks, shared by the pre-flight verification and the probe.
def stream_problem(body: bytes) -> str | None:
    """Why an SSE body is not a complete chat-completion stream (None if it is)."""
    if not body.rstrip().endswith(b"data: [DONE]"):
        return "stream does not end with data: [DONE]"
    return None


def stream_content_problem(body: bytes) -> str | None:
    """Stricter, for verification: every event parses and the deltas spell the canned answer."""
    if (problem := stream_problem(body)) is not None:
        return problem
    text: list[str] = []
    chunks = 0
    for line in body.decode().splitlines():
        if not line.startswith("data:") or line.strip() == "data: [DONE]":
            continue
        event = json.loads(line[5:])
        if event.get("object") != "chat.completion.chunk":
            return f"unexpected event {line[:120]!r}"
        chunks += 1
        for choice in event.get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
    want = " ".join(canned.WORDS)
    if "".join(text) != want:
        return f"stream content {''.join(text)!r} != {want!r} ({chunks} chunks)"
    return None


def completion_problem(body: bytes) -> str | None:
    try:
        obj = json.loads(body)
        content = obj["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a chat completion: {body[:200]!r}"
    if obj.get("object") != "chat.completion":
        return f"object is {obj.get('object')!r}, not 'chat.completion'"
    if content != " ".join(canned.WORDS):
        return f"content {content!r} is not the canned answer"
    return None


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


async def run_probe(
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    stream: bool,
    rate: float,
    duration: float,
    delay: float,
    limit_s: float,
    connections: int = 1,
) -> dict[str, Any]:
    """Send one request every 1/`rate` s (or right after the previous one if it was slower) for
    `duration` s, over `connections` keep-alive connections at once (the rate split between
    them); report TTFB and total-time percentiles in ms."""
    await asyncio.sleep(delay)
    ttfb: list[float] = []
    total: list[float] = []
    errors: dict[str, int] = {}
    n = max(1, connections)
    per = rate / n
    # Staggered starts: connection i fires 1/rate after connection i-1, so the requests arrive
    # evenly spaced rather than in bursts of n (which would measure queueing, not cost).
    await asyncio.gather(
        *(
            _paced(url, headers, body, stream, per, duration, limit_s, ttfb, total, errors, i / rate)
            for i in range(n)
        )
    )
    ttfb.sort()
    total.sort()
    return {
        "n": len(ttfb),
        "errors": errors,
        "ttfb_ms": {"p50": percentile(ttfb, 50), "p90": percentile(ttfb, 90), "p99": percentile(ttfb, 99)},
        "total_ms": {"p50": percentile(total, 50), "p99": percentile(total, 99)},
    }


async def _paced(
    url: str,
    headers: dict[str, str],
    body: bytes,
    stream: bool,
    rate: float,
    duration: float,
    limit_s: float,
    ttfb: list[float],
    total: list[float],
    errors: dict[str, int],
    offset: float = 0.0,
) -> None:
    await asyncio.sleep(offset)
    host, port, raw = build_request(url, headers, body)

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    conn: _Conn | None = None
    interval = 1.0 / rate
    start = time.perf_counter()
    deadline = start + duration
    next_at = start
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        if next_at > now:
            await asyncio.sleep(next_at - now)
        next_at = max(next_at + interval, time.perf_counter())
        try:
            if conn is None or conn.closed:
                conn = await _connect(host, port)
            reply = await asyncio.wait_for(conn.send(raw), limit_s)
        except TimeoutError:
            error("timeout")
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            conn = None
            continue
        except (OSError, ValueError) as exc:
            error(type(exc).__name__)
            conn = None
            continue
        if not 200 <= reply.status < 300:
            error(f"http_{reply.status}")
        elif (stream_problem(reply.body) if stream else completion_problem(reply.body)) is not None:
            error("bad_body")
        else:
            ttfb.append(reply.ttfb * 1000)
            total.append(reply.total * 1000)
    if conn is not None and conn.transport is not None:
        conn.transport.close()


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--url", required=True)
    ap.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second (at most)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait before the first request")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument(
        "--connections", type=int, default=1, help="concurrent paced connections, rate split evenly"
    )
    args = ap.parse_args()
    headers = {h.split(":", 1)[0].strip(): h.split(":", 1)[1].strip() for h in args.header}
    with contextlib.suppress(OSError):
        # The probe measures; it should not wait behind the load generator for the CPU it shares
        # (only root may raise a priority; elsewhere it runs at normal priority).
        os.nice(-10)
    result = _run(
        run_probe(
            args.url,
            headers,
            canned.request_body(args.stream),
            stream=args.stream,
            rate=args.rate,
            duration=args.duration,
            delay=args.delay,
            limit_s=args.timeout,
            connections=args.connections,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
