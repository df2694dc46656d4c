"""A task upstream for the engine's tests, run as its own process (it outlives a killed gateway):
`python -m tests.tasks.stub_upstream --port N`.

Jobs run on a clock: `steps` steps of `step_s` seconds, then done. The submit's `mode` picks a
behaviour: ok, never (stays at 50%), fail (fails after a step), refuse (400), busy (503), drop
(takes the job, then closes the connection without answering). Submits are idempotent by `key`
and every submit is counted per key, so a test can see whether one was repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


PNG = _png()


@dataclass
class Job:
    id: str
    key: str
    mode: str
    started: float
    steps: int
    step_s: float
    cancelled: bool = False

    def view(self, now: float) -> dict[str, Any]:
        k = int((now - self.started) / self.step_s) if self.step_s > 0 else self.steps
        out: dict[str, Any] = {"id": self.id, "status": "running", "progress": 0}
        if self.cancelled:
            out["status"] = "cancelled"
        elif self.mode == "never":
            out["progress"] = min(k * 10, 50)
        elif self.mode == "fail" and k >= 1:
            out.update(status="failed", error="the upstream gave up")
        elif k >= self.steps:
            out.update(status="succeeded", progress=100, image=f"/image/{self.id}.png")
        else:
            out["progress"] = k * 100 // self.steps
        return out


@dataclass
class Upstream:
    jobs: dict[str, Job] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    submits: collections.Counter[str] = field(default_factory=collections.Counter)
    polls: list[int] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    submit_delay: float = 0.0
    ids: Any = field(default_factory=lambda: itertools.count(1))


def app() -> web.Application:
    up = Upstream()

    async def submit(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        key, mode = str(body.get("key", "")), str(body.get("mode", "ok"))
        up.submits[key] += 1
        if mode == "refuse":
            return web.json_response({"error": "banned prompt"}, status=400)
        if mode == "busy":
            return web.json_response({"error": "busy"}, status=503)
        job_id = up.by_key.get(key)
        if job_id is None:
            job_id = f"job{next(up.ids)}"
            up.by_key[key] = job_id
            steps, step_s = int(body.get("steps", 3)), float(body.get("step_s", 0.3))
            up.jobs[job_id] = Job(job_id, key, mode, time.monotonic(), steps, step_s)
        delay = up.submit_delay + float(body.get("delay", 0))
        if delay:
            await asyncio.sleep(delay)
        if mode == "drop" and up.submits[key] == 1:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response({"id": job_id})

    async def lookup(request: web.Request) -> web.Response:
        job_id = up.by_key.get(request.query.get("key", ""))
        if job_id is None:
            return web.json_response({"error": "no such job"}, status=404)
        return web.json_response({"id": job_id, **up.jobs[job_id].view(time.monotonic())})

    async def poll(request: web.Request) -> web.Response:
        ids = (await request.json())["ids"]
        up.polls.append(len(ids))
        now = time.monotonic()
        return web.json_response({"tasks": [up.jobs[i].view(now) for i in ids if i in up.jobs]})

    async def cancel(request: web.Request) -> web.Response:
        job_id = (await request.json())["id"]
        up.cancels.append(job_id)
        if job_id in up.jobs:
            up.jobs[job_id].cancelled = True
        return web.json_response({"ok": True})

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "submits": dict(up.submits),
                "jobs": {i: {"key": j.key, "mode": j.mode} for i, j in up.jobs.items()},
                "polls": up.polls,
                "cancels": up.cancels,
            }
        )

    async def control(request: web.Request) -> web.Response:
        body = await request.json()
        up.submit_delay = float(body.get("submit_delay", up.submit_delay))
        return web.json_response({"submit_delay": up.submit_delay})

    @web.middleware
    async def one_request_per_connection(request: web.Request, handler: Any) -> web.StreamResponse:
        # A fresh connection for every call: a submit cut off on a kept-alive connection would
        # otherwise be sent again by the gateway's pool (the keep-alive race retry), which is
        # the pool's business (relay/pool.py), not the task engine's under test here.
        response: web.StreamResponse = await handler(request)
        response.force_close()
        return response

    application = web.Application(middlewares=[one_request_per_connection])
    application.add_routes(
        [
            web.post("/submit", submit),
            web.get("/lookup", lookup),
            web.post("/poll", poll),
            web.post("/cancel", cancel),
            web.get("/image/{name}", image),
            web.get("/_stats", stats),
            web.post("/_control", control),
        ]
    )
    return application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
