"""multipart/form-data bodies for upstream calls (audio uploads, image edits), as bytes."""

from __future__ import annotations

import os

from aitre.relay.job import FormField, UploadedFile


def _quote(value: str) -> str:
    # Field names and file names as browsers send them (WHATWG HTML): no raw quote or line break.
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def encode(fields: list[FormField]) -> tuple[str, bytes]:
    """(Content-Type header, body) for `fields`, in order."""
    boundary = "aitre-" + os.urandom(16).hex()
    dash = f"--{boundary}\r\n".encode()
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(dash)
        if isinstance(value, UploadedFile):
            content_type = _quote(value.content_type) or "application/octet-stream"
            parts.append(
                f'Content-Disposition: form-data; name="{_quote(name)}"; filename="{_quote(value.filename)}"'
                f"\r\nContent-Type: {content_type}\r\n\r\n".encode()
            )
            parts.append(value.data)
        else:
            parts.append(f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode())
            parts.append(value.encode())
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)
