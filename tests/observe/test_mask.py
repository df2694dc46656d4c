"""The log formatters mask secrets wherever they appear in a record: message, arguments, fields,
traceback; by value (secrets the process holds) and by shape (keys, tokens, headers, URLs)."""

from __future__ import annotations

import json
import logging

import pytest

from aitre.observe.logs import JsonFormatter, SecretMask, TextFormatter, log_config

CHANNEL = "AIzaSyD-0123456789abcdefghij"  # a key of no known shape: masked because it is known
CLIENT = "sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def _record(msg: str, *args: object, exc: BaseException | None = None, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("aitre.test", logging.ERROR, __file__, 1, msg, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    if fields:
        record.fields = fields
    return record


def _raised(message: str) -> BaseException:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_secrets_are_masked_everywhere_in_a_record(formatter: logging.Formatter) -> None:
    mask = SecretMask()
    mask.know([CHANNEL, "", "short"])
    formatter.mask = mask  # type: ignore[attr-defined]
    lines = [
        formatter.format(_record("upstream said %s", f"bad key {CHANNEL}")),
        formatter.format(_record("client %s", CLIENT)),
        formatter.format(
            _record(
                "headers: {'authorization': 'Bearer %s', 'cookie': 'a=%s; b=2'}", "tok-abcdef123", "c00kie"
            )
        ),
        formatter.format(_record("Authorization: Basic dXNlcjpwYXNzd29yZA==")),
        formatter.format(_record("calling https://user:hunter2secret@example.com/hook?token=abc123def&x=1")),
        formatter.format(_record("fetch https://example.com/v1?key=%s failed", CHANNEL)),
        formatter.format(_record("failed", exc=_raised(f"refused with {CLIENT} and {CHANNEL}"))),
        formatter.format(_record("access", key=CLIENT, note=f"via {CHANNEL}")),
        formatter.format(_record("mj-api-secret: %s", "s3cr3t-value-42")),
    ]
    text = "\n".join(lines)
    for secret in (
        CHANNEL,
        CLIENT,
        "tok-abcdef123",
        "c00kie",
        "dXNlcjpwYXNzd29yZA",
        "hunter2secret",
        "abc123def",
        "s3cr3t-value-42",
    ):
        assert secret not in text, (secret, text)
    assert "***" in text and "RuntimeError" in text and "sk-***b1a0" in text  # a key stays recognisable
    assert "short" not in mask._literals  # too short to mask by value: it would mask words


def test_json_lines_are_json_and_carry_fields() -> None:
    formatter = JsonFormatter()
    line = formatter.format(
        _record("GET %s", "/healthz", exc=_raised("boom"), request_id="req_1", status=200)
    )
    data = json.loads(line)
    assert data["message"] == "GET /healthz" and data["request_id"] == "req_1" and data["status"] == 200
    assert data["level"] == "error" and data["logger"] == "aitre.test" and "boom" in data["exc"]
    assert data["time"].endswith("Z")


def test_the_log_config_routes_everything_through_one_masking_handler() -> None:
    config = log_config("info", "json")
    assert config["formatters"]["aitre"]["()"] == "aitre.observe.logs.JsonFormatter"
    assert config["root"] == {"handlers": ["stderr"], "level": "INFO"}
    assert config["loggers"]["uvicorn.access"]["propagate"] is False  # ours replace its lines
    assert log_config("debug", "text")["formatters"]["aitre"]["()"] == "aitre.observe.logs.TextFormatter"
