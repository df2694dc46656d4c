"""The Range header as `media.serve` reads it for files it streams from a shared store."""

from __future__ import annotations

import pytest

from aitre.media.serve import byte_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-99", (0, 99)),
        ("bytes=10-", (10, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),  # more than there is: all of it
        ("bytes=990-5000", (990, 999)),  # clipped to the end
        ("bytes=1000-", False),  # past the end: 416
        ("bytes=-0", False),
        ("bytes=5-1", None),  # not a valid range: ignored (the whole file)
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=a-b", None),
        ("bytes=0", None),
        ("bytes=" + "9" * 400 + "-", False),
    ],
)
def test_byte_range(header: str | None, expected: object) -> None:
    assert byte_range(header, 1000) == expected
