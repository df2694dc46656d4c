"""The corked transport under uvicorn's protocol: one send per loop turn, nothing lost or
reordered, large bodies and closes not held back."""

from __future__ import annotations

import asyncio

from aitre.server_protocol import CorkedTransport


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.calls = 0
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.calls += 1
        self.sent.append(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.calls += 1
        self.sent.append(b"".join(lines))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_writes_of_one_turn_go_out_in_one_call_in_order() -> None:
    real = FakeTransport()
    corked = CorkedTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"")
    corked.write(bytearray(b"body"))
    assert real.calls == 0 and corked.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert real.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"] and real.calls == 1
    corked.write(b"next turn")
    await asyncio.sleep(0)
    assert real.sent[-1] == b"next turn" and real.calls == 2
    assert corked.get_extra_info("peername") == ("127.0.0.1", 1)


async def test_a_large_body_is_sent_at_once_and_close_flushes_first() -> None:
    real = FakeTransport()
    corked = CorkedTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"head")
    corked.write(b"x" * 100_000)
    assert real.sent == [b"head" + b"x" * 100_000]
    corked.write(b"last")
    corked.close()
    assert real.sent[-1] == b"last" and real.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert real.calls == 2


async def test_abort_drops_what_waits_and_a_closing_transport_gets_nothing() -> None:
    real = FakeTransport()
    corked = CorkedTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"never")
    corked.abort()
    await asyncio.sleep(0)
    assert real.sent == [] and real.aborted
