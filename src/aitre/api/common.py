"""What every route needs: the app state, the caller, a bounded and parsed body, a request id.

Every string a client gives that reaches the journal and the usage log is bounded here, before
a job exists: the model name (refused when too long or not printable: the log's column holds
128 characters, and PostgreSQL refuses NUL bytes) and the client address (a forwarded address
that is not an IP address is not believed).
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any, cast

from starlette.requests import Request
from starlette.types import Message, Receive

from aitre.accounts.auth import Caller
from aitre.accounts.keys import parse_bearer
from aitre.api.jsonbody import parse_object
from aitre.errors import ApiError, bad_request, invalid_api_key
from aitre.ids import new_request_id
from aitre.relay.cancel import ClientGone
from aitre.relay.job import FormField, RelayJob, UploadedFile
from aitre.state import AppState


def app_state(request: Request) -> AppState:
    state = request.scope.get("aitre.state")  # set by the fast path: skips Starlette's State lookup
    return cast(AppState, state if state is not None else request.app.state.aitre)


def request_id(request: Request) -> str:
    """Set by `RequestIdMiddleware`; generated here for apps mounted without it."""
    rid = request.scope.get("aitre.request_id")
    if rid is None:
        rid = new_request_id()
        request.scope["aitre.request_id"] = rid
    return str(rid)


# usage_logs.model, usage_logs.upstream_model and prices.model are String(128).
MAX_MODEL_CHARS = 128


def client_ip(request: Request) -> str:
    """The client's address (behind a trusted proxy, the one it forwarded for, if that is an
    IP address: what a proxy passes on from its client may be anything)."""
    client = request.scope.get("client")
    peer = str(client[0]) if client else ""
    forwarded = header(request, b"x-forwarded-for")
    if forwarded is None:
        return peer
    named = app_state(request).forwarded.client(peer, forwarded)
    if named == peer:
        return peer
    try:
        return str(ip_address(named))
    except ValueError:
        return peer


def header(request: Request, name: bytes) -> str | None:
    """One request header, read straight from the ASGI scope (`name` in lower case): the relay
    reads two or three, not worth building Starlette's `Headers` for."""
    scope = request.scope
    found: dict[bytes, bytes] | None = scope.get("aitre.headers")
    if found is None:
        found = scope["aitre.headers"] = dict(scope["headers"])
    value = found.get(name)
    return None if value is None else value.decode("latin-1")


async def identify(request: Request, state: AppState) -> Caller:
    """The caller behind the request's bearer key (401 without a valid one)."""
    key = parse_bearer(header(request, b"authorization"))
    if key is None:
        raise ApiError(
            401,
            "You didn't provide an API key. Send it as `Authorization: Bearer sk-...`.",
            code="missing_api_key",
        )
    caller = await state.catalog.keys.resolve(key)
    if caller is None:
        raise invalid_api_key()
    return caller


async def authenticate(request: Request, state: AppState) -> Caller:
    """The caller of a relay request, holding one of its key's in-flight slots until the front
    door has sent the whole answer (`fastpath.Gateway._serve` gives it back)."""
    caller = await identify(request, state)
    inflight = state.accountant.inflight
    if not inflight.enter(caller.token_id):
        raise ApiError(
            429,
            f"This API key already has {inflight.cap} requests in flight; wait for one to finish.",
            type="requests",
            code="too_many_concurrent_requests",
            headers={"retry-after": "1"},
        )
    request.scope["aitre.inflight"] = caller.token_id
    return caller


async def read_body(request: Request, limit: int) -> bytes:
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"Request body is larger than the {limit} bytes this gateway accepts.", code="body_too_large"
    )


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    raw = await read_body(request, limit)
    data = parse_object(raw)
    request.scope["aitre.json_body"] = (raw, data)  # see `new_job`: the bytes may go upstream as is
    return data


def require_model(body: dict[str, Any]) -> str:
    return valid_model(body.get("model"))


def valid_model(model: object) -> str:
    """A model name fit to be logged: present, at most 128 characters, printable."""
    if not isinstance(model, str) or not model:
        raise bad_request(
            "You must provide a model parameter.", param="model", code="missing_required_parameter"
        )
    if len(model) > MAX_MODEL_CHARS:
        raise bad_request(
            f"The model name is longer than {MAX_MODEL_CHARS} characters.",
            param="model",
            code="invalid_model",
        )
    if not model.isprintable():
        raise bad_request(
            "The model name contains control or other non-printable characters.",
            param="model",
            code="invalid_model",
        )
    return model


def new_job(
    request: Request, caller: Caller, endpoint: str, path: str, body: dict[str, Any], model: str, **extra: Any
) -> RelayJob:
    scope = request.scope
    read = scope.get("aitre.json_body")
    if read is not None and read[1] is body:
        extra["raw_body"] = read
    job = scope["aitre.job"] = RelayJob(
        request_id=request_id(request),
        caller=caller,
        endpoint=endpoint,
        path=path,
        model=model,
        body=body,
        client_ip=client_ip(request),
        receive=request.receive,
        trace_id=scope.get("aitre.trace_id", ""),
        **extra,
    )
    return job


def require_str(body: dict[str, Any], name: str, max_len: int | None = None) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"`{name}` is required and must be a non-empty string.", param=name)
    if max_len is not None and len(value) > max_len:
        raise bad_request(f"`{name}` is longer than {max_len} characters.", param=name)
    return value


def replay_body(raw: bytes, then: Receive | None = None) -> Receive:
    """An ASGI `receive` that hands out a body already read, then passes on to `then` (the
    connection's own `receive`, to hear of a disconnect), or reports a disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then() if then is not None else {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return receive


async def read_form(request: Request, limit: int) -> list[FormField]:
    """A multipart body, size-bounded before parsing, as ordered (name, text | file) pairs."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise bad_request("This endpoint takes multipart/form-data.")
    raw = await read_body(request, limit)
    try:
        form = await Request(request.scope, replay_body(raw)).form(max_files=16, max_fields=64)
    except Exception as exc:  # python-multipart raises several types for malformed bodies
        raise bad_request(f"Malformed multipart body: {exc}") from None
    fields: list[FormField] = []
    seen: set[str] = set()
    try:
        for name, value in form.multi_items():
            if isinstance(value, str):
                # As with JSON keys: the gateway reads the first `model`, an upstream may read the last.
                if name in seen and not name.endswith("[]"):
                    raise bad_request(f"The form has the field `{name}` twice; send it once.", param=name)
                seen.add(name)
                fields.append((name, value))
            else:
                data = await value.read()
                fields.append(
                    (
                        name,
                        UploadedFile(
                            value.filename or name, value.content_type or "application/octet-stream", data
                        ),
                    )
                )
    finally:
        await form.close()
    return fields


def form_model(fields: list[FormField]) -> str:
    return valid_model(form_value(fields, "model"))


def form_value(fields: list[FormField], name: str) -> str | None:
    for key, value in fields:
        if key == name and isinstance(value, str):
            return value
    return None


def form_files(fields: list[FormField], *names: str) -> list[UploadedFile]:
    return [v for k, v in fields if k in names and isinstance(v, UploadedFile)]
