"""Log lines: text or JSON (`AITRE_LOG_FORMAT`), secrets masked, written off the event loop, and
the access line of each request.

uvicorn applies `log_config()` in every process (workers too); the lifespan then moves the
writing of every record to a thread (`install`): a record is formatted and written there, so a
slow or blocked stderr (a full pipe, a slow journald) never stalls requests.

No secret reaches a log line: every line, tracebacks included, goes through `SecretMask`, which
masks the secrets this process knows by value (channel keys, the metrics token, the operator's
notifyHook key) and anything shaped like a credential (API keys, bearer tokens, Authorization
and Cookie values, credentials in URLs).
"""

from __future__ import annotations

import copy
import logging
import logging.handlers
import queue
import re
import time
from collections.abc import Iterable
from typing import Any

import orjson

ACCESS_LOGGER = "aitre.access"

_MASKED = "***"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header-like "name: value" / "name=value" pairs whose value is a credential (to the line's end
    # for cookies: a cookie header holds several).
    (re.compile(r"(?i)\b((?:set-)?cookie)([\"']?\s*[:=]\s*)[^\r\n]+"), rf"\1\2{_MASKED}"),
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|x-api-key|api-key|mj-api-secret|x-key)"
            r"([\"']?\s*[:=]\s*[\"']?)(?:bearer\s+|basic\s+)?[^\s\"',;]+"
        ),
        rf"\1\2{_MASKED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), rf"\1 {_MASKED}"),
    # API keys by their look: OpenAI-style `sk-...` (ours too), keeping a recognisable end.
    (re.compile(r"\b(sk-)[A-Za-z0-9_-]{6,}([A-Za-z0-9]{4})\b"), rf"\1{_MASKED}\2"),
    # Credentials in URLs: user:password@, and key-like query parameters.
    (re.compile(r"(://[^/\s:@]+):[^/\s@]+@"), rf"\1:{_MASKED}@"),
    (
        re.compile(
            r"(?i)([?&](?:key|api[_-]?key|token|access_token|secret|signature|sig|password)=)[^&\s\"'#]+"
        ),
        rf"\1{_MASKED}",
    ),
)
_MIN_LITERAL = 6  # shorter "secrets" would mask ordinary words


class SecretMask:
    """Masks secrets in text: known values first, then credential shapes."""

    def __init__(self) -> None:
        self._literals: tuple[str, ...] = ()

    def know(self, secrets: Iterable[str]) -> None:
        """The secrets this process holds by value (replaces the earlier set)."""
        found = {s for s in secrets if s and len(s) >= _MIN_LITERAL}
        self._literals = tuple(sorted(found, key=len, reverse=True))  # longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        for secret in self._literals:
            if secret in text:
                text = text.replace(secret, _MASKED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class _Masking(logging.Formatter):
    """A formatter whose whole output (message, fields, traceback) is masked."""

    mask = SecretMask()  # replaced by `install` with the app's, which knows the live secrets

    def fields(self, record: logging.LogRecord) -> dict[str, Any] | None:
        found = getattr(record, "fields", None)
        return found if isinstance(found, dict) else None


class TextFormatter(_Masking):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = self.fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
        return self.mask(line)


class JsonFormatter(_Masking):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the record's
    `fields` (access lines), and `exc` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = self.fields(record)
        if fields:
            out.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return self.mask(orjson.dumps(out, default=str).decode())


def _iso(created: float) -> str:
    seconds = int(created)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"
    )


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """uvicorn's `log_config`: every logger (uvicorn's, aitre's, libraries') to stderr in `fmt`.
    uvicorn's own access lines are off: the front door writes richer ones (`access`)."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"aitre": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "aitre", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": lvl},
        "loggers": {
            "uvicorn": {"handlers": [], "level": lvl, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": lvl, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class _Queued(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting (and masking) happens there."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:  # a traceback's frames must not cross threads: its text does
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


class LogPipe:
    """Root's masking handlers moved behind a queue and a writer thread (`install`)."""

    def __init__(self, mask: SecretMask) -> None:
        self.mask = mask
        self._listener: logging.handlers.QueueListener | None = None
        self._moved: list[logging.Handler] = []
        self._queued: logging.Handler | None = None

    def install(self) -> None:
        root = logging.getLogger()
        ours = [h for h in root.handlers if isinstance(h.formatter, _Masking)]
        for handler in ours:
            handler.formatter.mask = self.mask  # type: ignore[union-attr]
        if not ours:
            return  # logging set up by someone else (a test harness, an embedding app): leave it
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(records, *ours, respect_handler_level=True)
        self._queued = _Queued(records)
        for handler in ours:
            root.removeHandler(handler)
        root.addHandler(self._queued)
        self._moved = ours
        self._listener.start()

    def uninstall(self) -> None:
        if self._listener is None:
            return
        root = logging.getLogger()
        if self._queued is not None:
            root.removeHandler(self._queued)
        self._listener.stop()  # writes what is queued
        for handler in self._moved:
            root.addHandler(handler)
        self._listener = None


_access = logging.getLogger(ACCESS_LOGGER)


def access(
    method: str, path: str, status: int, latency_ms: float, overhead_ms: float, fields: dict[str, Any]
) -> None:
    """One request's access line."""
    _access.info(
        "%s %s %d %.1fms",
        method,
        path,
        status,
        latency_ms,
        extra={
            "fields": {
                "method": method,
                "path": path,
                "status": status,
                "latency_ms": round(latency_ms, 2),
                "overhead_ms": round(overhead_ms, 3),
                **fields,
            }
        },
    )
