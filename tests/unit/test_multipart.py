"""The multipart encoder for upstream uploads, read back by Starlette's form parser (the one
the simulator and most servers use)."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request

from aitre.api.common import replay_body
from aitre.relay import multipart
from aitre.relay.job import FormField, UploadedFile


async def _parse(content_type: str, body: bytes) -> list[tuple[str, str | tuple[str, str, bytes]]]:
    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
    form = await Request(scope, replay_body(body)).form()
    out: list[tuple[str, str | tuple[str, str, bytes]]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            out.append((name, (value.filename or "", value.content_type or "", await value.read())))
        else:
            out.append((name, value))
    await form.close()
    return out


async def test_fields_and_files_round_trip_in_order() -> None:
    audio = bytes(range(256)) * 40  # every byte value, CR and LF included
    fields: list[FormField] = [
        ("model", "whisper-1"),
        ("file", UploadedFile("talk.wav", "audio/wav", audio)),
        ("prompt", "línea 1\r\nline 2 ☕"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
    ]
    content_type, body = multipart.encode(fields)
    assert content_type.startswith("multipart/form-data; boundary=aitre-")
    assert await _parse(content_type, body) == [
        ("model", "whisper-1"),
        ("file", ("talk.wav", "audio/wav", audio)),
        ("prompt", "línea 1\r\nline 2 ☕"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
    ]


async def test_quotes_and_line_breaks_in_names_cannot_break_the_part_headers() -> None:
    fields: list[FormField] = [("image", UploadedFile('evil".png\r\nX-Injected: 1', "image/png", b"PNG"))]
    content_type, body = multipart.encode(fields)
    assert b"\r\nX-Injected" not in body
    ((name, (filename, ctype, data)),) = await _parse(content_type, body)  # type: ignore[misc]
    assert (name, ctype, data) == ("image", "image/png", b"PNG")
    assert filename == "evil%22.png%0D%0AX-Injected: 1"
