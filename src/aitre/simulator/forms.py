"""Multipart bodies (image edits, audio uploads), read whole and size-bounded."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from aitre.simulator.common import bad_request, error


@dataclass(slots=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)  # the last value of each text field
    lists: dict[str, list[str]] = field(default_factory=dict)  # every value of each text field
    files: dict[str, list[Upload]] = field(default_factory=dict)

    def uploads(self, *names: str) -> list[Upload]:
        return [u for name in names for u in self.files.get(name, [])]


async def read_form(request: Request, max_bytes: int) -> Form | Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return bad_request("This endpoint takes multipart/form-data.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return error(413, f"The request is larger than {max_bytes} bytes.", "request_too_large")
    form = Form()
    try:
        parsed = await request.form(max_files=32, max_fields=64)
    except Exception as exc:  # python-multipart raises several types for malformed bodies
        return bad_request(f"The multipart body could not be parsed: {exc}")
    try:
        for name, value in parsed.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                upload = Upload(
                    value.filename or name, value.content_type or "application/octet-stream", data
                )
                form.files.setdefault(name, []).append(upload)
            else:
                form.fields[name] = value
                form.lists.setdefault(name, []).append(value)
    finally:
        await parsed.close()
    if sum(len(u.data) for ups in form.files.values() for u in ups) > max_bytes:
        return error(413, f"The uploaded files are larger than {max_bytes} bytes.", "request_too_large")
    return form
