"""Fault injection for the simulator.

A fault spec is a comma- or semicolon-separated list of `name[=value]` items:

| item | effect |
| --- | --- |
| `status=N` | answer with HTTP N and an OpenAI-format error body |
| `retry_after=S` | with `status`, send `Retry-After: S` |
| `delay=S` | wait S seconds before answering |
| `hang` | never answer (until the client goes away) |
| `truncate=N` | stream N content chunks, then drop the connection (non-stream: cut the body) |
| `stall=N` | stream N content chunks, then go silent without closing |
| `chunk_delay=S` | wait S seconds between stream chunks |
| `bad_json` | answer 200 with a body that is not JSON |
| `no_usage` | leave `usage` out of the answer (and out of the stream) |
| `p=X` | apply the fault with probability X (0..1) |
| `mj_fail=REASON` | MJ: the submitted task ends in FAILURE with REASON |
| `mj_banned` | MJ: the submit is refused with code 24 (banned prompt) |
| `mj_stuck` | MJ: the task stays IN_PROGRESS forever |
| `mj_no_callback` | MJ: the task never calls its notifyHook |
| `mj_queued=N` | MJ: the submit answers code 22 (queued behind N tasks); the task runs as usual |
| `mj_queue_full` | MJ: the submit is refused with code 23 (queue full) |

It comes from (first match wins): the `x-sim-fault` request header, a `/f/<spec>/` path prefix
(so a channel's base URL can carry it), or the runtime rules set with `POST /_sim/faults`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Fault:
    status: int = 0
    retry_after: str = ""
    delay: float = 0.0
    hang: bool = False
    truncate: int = -1
    stall: int = -1
    chunk_delay: float = 0.0
    bad_json: bool = False
    no_usage: bool = False
    # midjourney-proxy task outcomes (see routes_mj.py); they act on the task, not the HTTP answer.
    mj_fail: str | None = None
    mj_banned: bool = False
    mj_stuck: bool = False
    mj_no_callback: bool = False
    mj_queued: int = 0
    mj_queue_full: bool = False

    @property
    def active(self) -> bool:
        return bool(
            self.status
            or self.delay
            or self.hang
            or self.truncate >= 0
            or self.stall >= 0
            or self.chunk_delay
            or self.bad_json
            or self.no_usage
            or self.mj_fail is not None
            or self.mj_banned
            or self.mj_stuck
            or self.mj_no_callback
            or self.mj_queued
            or self.mj_queue_full
        )


def parse_fault(spec: str, rng: random.Random | None = None) -> Fault:
    """Parse a spec; a `p=` item that does not fire yields an inactive fault."""
    fault = Fault()
    probability = 1.0
    for item in spec.replace(";", ",").split(","):
        name, _, value = item.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name == "status":
            fault.status = int(value)
        elif name == "retry_after":
            fault.retry_after = value
        elif name == "delay":
            fault.delay = float(value)
        elif name == "hang":
            fault.hang = True
        elif name == "truncate":
            fault.truncate = int(value or 0)
        elif name == "stall":
            fault.stall = int(value or 0)
        elif name == "chunk_delay":
            fault.chunk_delay = float(value)
        elif name == "bad_json":
            fault.bad_json = True
        elif name == "no_usage":
            fault.no_usage = True
        elif name.startswith("mj_"):
            _parse_mj(fault, name, value)
        elif name == "p":
            probability = float(value)
        else:
            raise ValueError(f"unknown fault item {name!r}")
    if probability < 1.0 and (rng or random).random() >= probability:
        return Fault()
    return fault


def _parse_mj(fault: Fault, name: str, value: str) -> None:
    if name == "mj_fail":
        fault.mj_fail = value.strip() or "Simulated failure"
    elif name == "mj_banned":
        fault.mj_banned = True
    elif name == "mj_stuck":
        fault.mj_stuck = True
    elif name == "mj_no_callback":
        fault.mj_no_callback = True
    elif name == "mj_queued":
        fault.mj_queued = int(value or 1)
    elif name == "mj_queue_full":
        fault.mj_queue_full = True
    else:
        raise ValueError(f"unknown fault item {name!r}")


@dataclass(slots=True)
class FaultRule:
    """A runtime rule: apply `spec` to requests whose path contains `path` (and model, if set),
    for the next `times` matches (-1: until removed)."""

    spec: str
    path: str = ""
    model: str = ""
    times: int = -1
    hits: int = 0

    def matches(self, path: str, model: str) -> bool:
        if self.times >= 0 and self.hits >= self.times:
            return False
        if self.path and self.path not in path:
            return False
        return not (self.model and self.model != model)


@dataclass(slots=True)
class FaultBook:
    rules: list[FaultRule] = field(default_factory=list)

    def set_rules(self, rules: list[dict[str, Any]]) -> None:
        parsed = [FaultRule(**r) for r in rules]
        for r in parsed:
            parse_fault(r.spec)  # validate now, not on the first request
        self.rules = parsed

    def pick(self, path: str, model: str) -> str:
        for rule in self.rules:
            if rule.matches(path, model):
                rule.hits += 1
                return rule.spec
        return ""
