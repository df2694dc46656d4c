"""Servers the multi-instance tests start for themselves on free loopback ports: an S3 (moto's
standalone server) and a Redis that a test may stop and start again."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from aiobotocore.session import get_session
from redis import Redis

from tests.support.processes import free_port

S3_KEY, S3_SECRET, S3_REGION = "testing-key", "testing-secret", "us-east-1"


class MotoS3:
    """`moto.server` (S3 only) in a subprocess, with one bucket."""

    def __init__(self, workdir: Path, bucket: str = "aitre-media") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.log = workdir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoS3:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url, timeout=1)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("moto did not come up")
            time.sleep(0.1)
        asyncio.run(self._create_bucket())
        return self

    async def _create_bucket(self) -> None:
        async with get_session().create_client(
            "s3",
            endpoint_url=self.url,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        ) as client:
            await client.create_bucket(Bucket=self.bucket)

    def env(self, **extra: str) -> dict[str, str]:
        """A gateway's settings for this bucket."""
        return {
            "AITRE_MEDIA_BACKEND": "s3",
            "AITRE_MEDIA_S3_BUCKET": self.bucket,
            "AITRE_MEDIA_S3_ENDPOINT": self.url,
            "AITRE_MEDIA_S3_REGION": S3_REGION,
            "AITRE_MEDIA_S3_ACCESS_KEY": S3_KEY,
            "AITRE_MEDIA_S3_SECRET_KEY": S3_SECRET,
            "AITRE_MEDIA_S3_PREFIX": "media/",
            **extra,
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class RedisServer:
    """A `redis-server` of the test's own, without persistence: stopping it loses everything in
    it, as a Redis restarted without a disk would."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is required (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*args, "--dir", str(self.workdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(Exception):
                    if client.ping():
                        return self
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not come up")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # gone at once, with what it held
            self.proc.wait(5)
