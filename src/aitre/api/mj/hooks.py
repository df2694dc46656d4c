"""URLs a client hands the MJ API: reference images (fetched through the guarded fetcher) and
notifyHooks (refused at submit when they point at a private, loopback or link-local address;
the engine's deliveries go through the guarded fetcher again, so a DNS change later is caught)."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aitre.errors import ApiError
from aitre.mj.answers import invalid
from aitre.mj.inputs import Fetch
from aitre.security.ssrf import literal_ip

if TYPE_CHECKING:
    from aitre.state import AppState


def guarded_fetch(state: AppState) -> Fetch:
    async def fetch(url: str, name: str) -> bytes:
        try:
            return (await state.fetcher.fetch(url, name)).data
        except ApiError as exc:
            raise invalid(f"{name}: {exc.message}") from None

    return fetch


async def check_hook(state: AppState, url: str) -> None:
    host = urlsplit(url).hostname or ""
    policy = state.fetcher.policy
    ip = literal_ip(host)
    if ip is not None:
        addresses = [str(ip)]
    else:
        try:
            async with asyncio.timeout(5):
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            raise invalid(f"notifyHook: cannot resolve {host}") from None
        addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(policy.permits(a) for a in addresses):
        raise invalid("notifyHook must point at a public address")
