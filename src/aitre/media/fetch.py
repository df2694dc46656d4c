"""Fetch a URL a client gave us (a reference image), safely: http(s) or data URIs only, public
addresses only (see `security.ssrf`), every redirect checked, bounded in size and time."""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import aiohttp

from aitre.errors import ApiError
from aitre.media.kinds import sniff
from aitre.security.ssrf import AddressPolicy, AddressRefused, GuardedResolver, literal_ip


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    ext: str


_POST_ANSWER_BYTES = 64 * 1024


class PostFailed(Exception):
    """A guarded POST got no answer (connection refused or reset, timeout)."""


class FetchRefused(ApiError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(400, message, code="invalid_url", param=param)


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:"):
        raise FetchRefused("malformed data URI")
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise FetchRefused(f"data URI larger than {max_bytes} bytes")
    try:
        data = (
            base64.b64decode(payload, validate=False)
            if header.endswith(";base64")
            else unquote_to_bytes(payload)
        )
    except (binascii.Error, ValueError):
        raise FetchRefused("data URI is not valid base64") from None
    if len(data) > max_bytes:
        raise FetchRefused(f"data URI larger than {max_bytes} bytes")
    return data


class MediaFetcher:
    def __init__(self, policy: AddressPolicy, max_bytes: int, timeout: float, max_redirects: int = 3) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy), limit=64)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": "aitre-fetch/1"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str, param: str | None = None) -> Fetched:
        if url.startswith("data:"):
            data = decode_data_uri(url, self.max_bytes)
            return Fetched(data, sniff(data))
        try:
            async with asyncio.timeout(self.timeout):
                data = await self._follow(url, param)
        except TimeoutError:
            raise FetchRefused(f"fetching {url} took longer than {self.timeout:g}s", param) from None
        return Fetched(data, sniff(data))

    async def _follow(self, url: str, param: str | None) -> bytes:
        for _ in range(self.max_redirects + 1):
            self._check_url(url, param)
            try:
                async with self._client().get(url, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status != 200:
                        raise FetchRefused(f"fetching {url} failed with HTTP {resp.status}", param)
                    return await self._read(resp, url, param)
            except aiohttp.ClientConnectorError as exc:
                raise FetchRefused(f"cannot fetch {url}: {exc.os_error}", param) from None
            except aiohttp.ClientError as exc:
                raise FetchRefused(f"cannot fetch {url}: {exc}", param) from None
        raise FetchRefused(f"too many redirects fetching {url}", param)

    async def post(self, url: str, body: bytes, headers: dict[str, str], within_s: float) -> int:
        """POST `body` to a URL a client chose (a notifyHook) under the same address policy as
        `fetch`; a redirect is not followed (its status is the answer: a POST must not turn into
        a GET elsewhere). Returns the HTTP status. `FetchRefused`: the URL or its address is not
        allowed (trying again will not help); `PostFailed`: no answer (worth another try)."""
        self._check_url(url, None)
        try:
            async with (
                asyncio.timeout(within_s),
                self._client().post(url, data=body, headers=headers, allow_redirects=False) as resp,
            ):
                await resp.content.read(_POST_ANSWER_BYTES)  # a little of the answer, then let go
                return resp.status
        except TimeoutError:
            raise PostFailed(f"no answer within {within_s:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                raise FetchRefused(f"refusing to call {url}: {exc.os_error}") from None
            raise PostFailed(f"cannot connect: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise PostFailed(f"{type(exc).__name__}: {exc}") from None

    def _check_url(self, url: str, param: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(
                f"only http(s) and data URLs can be fetched, not {parts.scheme or 'this'}", param
            )
        if not parts.hostname:
            raise FetchRefused("the URL has no host", param)
        ip = literal_ip(parts.hostname)
        if ip is not None and not self.policy.permits(ip):
            raise FetchRefused(f"refusing to fetch {url}: the address is not public", param)

    async def _read(self, resp: aiohttp.ClientResponse, url: str, param: str | None) -> bytes:
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchRefused(f"{url} is larger than {self.max_bytes} bytes", param)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchRefused(f"{url} is larger than {self.max_bytes} bytes", param)
            chunks.append(chunk)
        return b"".join(chunks)
