"""The media store in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...): every instance reads
and writes the same files, so any instance serves any link (`AITRE_MEDIA_BACKEND=s3`).

Objects are named `<AITRE_MEDIA_S3_PREFIX><name>`, with the same unguessable names as the local
store. `/media/<name>` streams them through the gateway (Range passed on to S3), or, with
`AITRE_MEDIA_S3_REDIRECT`, answers with a redirect to a presigned URL so the bytes go from the
bucket to the client directly. The client is aiobotocore (botocore's async port); it is an
optional dependency (`pip install 'aitre[s3]'`), imported only when this backend is chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from aitre.media.kinds import content_type, sniff
from aitre.media.store import NAME, MediaInfo, StoredMedia, new_name

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

# Files larger than this go up in parts of this size (S3 takes at most 5 GiB in one PUT; parts
# keep memory per upload bounded and let a failed part be sent again alone).
PART_BYTES = 16 * 1024 * 1024
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str
    endpoint: str = ""  # empty: AWS for `region`
    region: str = "us-east-1"
    access_key: str = ""  # empty: botocore's usual chain (environment, profile, instance role)
    secret_key: str = ""
    prefix: str = ""
    addressing_style: str = "auto"  # auto: path-style with an endpoint, virtual-hosted without
    redirect: bool = False
    presign_seconds: int = 3600
    public_endpoint: str = ""  # the endpoint clients reach, for presigned links; empty: `endpoint`
    max_connections: int = 64


class MediaBackendError(RuntimeError):
    """The bucket cannot be used (missing, no access, unreachable)."""


class S3MediaStore:
    def __init__(self, config: S3Settings, public_base: str) -> None:
        self.config = config
        self.public_base = public_base.rstrip("/")
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._signer: S3Client | None = None

    def _client_args(self, endpoint: str) -> dict[str, Any]:
        c = self.config
        style = c.addressing_style
        if style == "auto":
            style = "path" if endpoint else "virtual"
        args: dict[str, Any] = {
            "region_name": c.region,
            "config": AioConfig(
                max_pool_connections=max(1, c.max_connections),
                s3={"addressing_style": style},
                signature_version="s3v4",
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        if endpoint:
            args["endpoint_url"] = endpoint
        if c.access_key:
            args["aws_access_key_id"] = c.access_key
            args["aws_secret_access_key"] = c.secret_key
        return args

    async def start(self) -> None:
        """Open the client and check that the bucket is there and ours to use."""
        session = get_session()
        c = self.config
        self._client = await self._stack.enter_async_context(
            session.create_client("s3", **self._client_args(c.endpoint))
        )
        self._signer = self._client
        if c.public_endpoint and c.public_endpoint != c.endpoint:
            self._signer = await self._stack.enter_async_context(
                session.create_client("s3", **self._client_args(c.public_endpoint))
            )
        try:
            await self._client.head_bucket(Bucket=c.bucket)
        except (ClientError, BotoCoreError) as exc:
            await self.close()
            raise MediaBackendError(
                f"the media bucket {c.bucket!r} cannot be used ({exc}); check AITRE_MEDIA_S3_BUCKET, "
                "AITRE_MEDIA_S3_ENDPOINT and the credentials"
            ) from None

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = self._signer = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise MediaBackendError("the S3 media store is not started")
        return self._client

    def _key(self, name: str) -> str:
        return self.config.prefix + name

    def url(self, name: str) -> str:
        return f"{self.public_base}/media/{name}"

    def locate(self, name: str) -> Path | None:
        return None

    async def save(self, data: bytes, ext: str | None = None) -> StoredMedia:
        ext = ext or sniff(data)
        name = new_name(ext)
        await self.client.put_object(
            Bucket=self.config.bucket, Key=self._key(name), Body=data, ContentType=content_type(ext)
        )
        return StoredMedia(name, self.url(name), len(data), content_type(ext))

    async def save_file(self, path: Path, ext: str | None = None) -> StoredMedia:
        if ext is None:
            head = await asyncio.to_thread(_read_head, path)
            ext = sniff(head)
        size = (await asyncio.to_thread(path.stat)).st_size
        name = new_name(ext)
        if size <= PART_BYTES:
            data = await asyncio.to_thread(path.read_bytes)
            await self.client.put_object(
                Bucket=self.config.bucket, Key=self._key(name), Body=data, ContentType=content_type(ext)
            )
        else:
            await self._upload_parts(path, name, ext)
        await asyncio.to_thread(path.unlink, True)
        return StoredMedia(name, self.url(name), size, content_type(ext))

    async def _upload_parts(self, path: Path, name: str, ext: str) -> None:
        bucket, key = self.config.bucket, self._key(name)
        made = await self.client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type(ext)
        )
        upload_id = made["UploadId"]
        fh: BinaryIO = await asyncio.to_thread(path.open, "rb")
        try:
            parts: list[CompletedPartTypeDef] = []
            number = 1
            while part := await asyncio.to_thread(fh.read, PART_BYTES):
                sent = await self.client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                parts.append({"ETag": sent["ETag"], "PartNumber": number})
                number += 1
            await self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Parts of an unfinished upload are stored (and billed) until aborted.
            with contextlib.suppress(ClientError, BotoCoreError):
                await self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        finally:
            fh.close()

    async def stat(self, name: str) -> MediaInfo | None:
        match = NAME.match(name)
        if match is None:
            return None
        try:
            head = await self.client.head_object(Bucket=self.config.bucket, Key=self._key(name))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return MediaInfo(
            name,
            int(head["ContentLength"]),
            content_type(match.group(2)),
            head["LastModified"].timestamp(),
            etag=str(head.get("ETag", "")),
        )

    async def open(self, name: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes] | None:
        if NAME.match(name) is None:
            return None
        wanted = f"bytes={start}-{'' if end is None else end}"
        try:
            got = await self.client.get_object(Bucket=self.config.bucket, Key=self._key(name), Range=wanted)
        except ClientError as exc:
            if _missing(exc) or _unsatisfiable(exc):
                return None
            raise
        return _chunks(got["Body"])

    async def presigned(self, name: str) -> str | None:
        if not self.config.redirect or NAME.match(name) is None:
            return None
        signer = self._signer or self.client
        url: str = await signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.config.bucket, "Key": self._key(name)},
            ExpiresIn=max(1, self.config.presign_seconds),
        )
        return url

    async def delete(self, name: str) -> bool:
        if await self.stat(name) is None:
            return False
        await self.client.delete_object(Bucket=self.config.bucket, Key=self._key(name))
        return True

    async def sweep(self, older_than_s: float) -> int:
        """Remove objects under the prefix older than `older_than_s`, a thousand per request.
        (A lifecycle rule on the bucket does the same without the listing.)"""
        cutoff = time.time() - older_than_s
        paginator = self.client.get_paginator("list_objects_v2")
        removed = 0
        batch: list[str] = []
        async for page in paginator.paginate(Bucket=self.config.bucket, Prefix=self.config.prefix):
            for item in page.get("Contents", []):
                key = item.get("Key", "")
                name = key[len(self.config.prefix) :]
                modified = item.get("LastModified")
                if NAME.match(name) and modified is not None and modified.timestamp() < cutoff:
                    batch.append(key)
                if len(batch) == 1000:
                    removed += await self._delete_keys(batch)
                    batch = []
        if batch:
            removed += await self._delete_keys(batch)
        return removed

    async def _delete_keys(self, keys: list[str]) -> int:
        answer = await self.client.delete_objects(
            Bucket=self.config.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        failed = answer.get("Errors", [])
        for error in failed[:5]:
            log.warning("media sweep could not delete %s: %s", error.get("Key"), error.get("Message"))
        return len(keys) - len(failed)


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or error.get("Code") in ("404", "NoSuchKey", "NotFound")


def _unsatisfiable(exc: ClientError) -> bool:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 416


def _read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(16)


async def _chunks(body: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await body.read(_CHUNK):
            yield chunk
    finally:
        body.close()
