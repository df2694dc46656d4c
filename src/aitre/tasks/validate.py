"""What the engine checks of a `TaskSpec` itself (the kind's API validated the rest): bounded
strings, and a notifyHook that is a URL the gateway may call at all."""

from __future__ import annotations

from urllib.parse import urlsplit

from aitre.errors import ApiError
from aitre.security.ssrf import AddressPolicy, literal_ip
from aitre.tasks.protocol import TaskSpec

MAX_ID = 59  # the hold id is `task_<id>`, at most 64
MAX_HOOK = 2048
MAX_STATE = 4096


def _bad(message: str, param: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def check_hook(url: str, policy: AddressPolicy) -> None:
    """A notifyHook: http(s), with a host, not a literal address the gateway may not call (a name
    is checked when it is called: it resolves then)."""
    if len(url) > MAX_HOOK:
        raise _bad(f"notifyHook is longer than {MAX_HOOK} characters", "notifyHook", "invalid_notify_hook")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad("notifyHook must be an http(s) URL", "notifyHook", "invalid_notify_hook")
    ip = literal_ip(parts.hostname)
    if ip is not None and not policy.permits(ip):
        raise _bad(
            f"notifyHook {url} is not a public address; the gateway does not call it",
            "notifyHook",
            "invalid_notify_hook",
        )


def check_spec(spec: TaskSpec, policy: AddressPolicy) -> None:
    if (
        not spec.id
        or len(spec.id) > MAX_ID
        or not spec.id.isascii()
        or not spec.id.isprintable()
        or " " in spec.id
    ):
        raise _bad(f"a task id is 1 to {MAX_ID} printable ASCII characters without spaces", "id")
    for name, value, cap in (
        ("kind", spec.kind, 32),
        ("action", spec.action, 32),
        ("model", spec.model, 128),
    ):
        if (not value and name != "action") or len(value) > cap:
            raise _bad(f"{name} must be 1 to {cap} characters", name)
    if spec.parent_id is not None and len(spec.parent_id) > 64:
        raise _bad("parent id longer than 64 characters", "parent_id")
    if spec.cost < 0:
        raise _bad("a task's cost cannot be negative", "cost")
    if spec.client_state is not None and len(spec.client_state) > MAX_STATE:
        raise _bad(f"state is longer than {MAX_STATE} characters", "state")
    if spec.notify_hook:
        check_hook(spec.notify_hook, policy)
