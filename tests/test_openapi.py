"""The OpenAPI document (`/openapi.json`) describes every public route the gateway serves, truthfully:
it is valid OpenAPI, it lists every route of the fast path (read from the app, so a route added
without a description fails here), the gateway's real answers match the documented schemas, the
documented examples work, the documented required fields and bounds are the ones the gateway
enforces, and `AITRE_DOCS_ENABLED=false` turns the document and its pages off."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from PIL import Image

from aitre.api.openapi_public import ROUTES
from aitre.app import create_app
from aitre.config import Settings
from tests.support.processes import Gateway

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def doc(gateway: Gateway) -> Doc:
    resp = httpx.get(gateway.url + "/openapi.json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    data: Doc = resp.json()
    return data


def _auth(gw: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.user_key}"}


def _served(tmp: Path) -> set[tuple[str, str]]:
    """(method, path) of every route the fast path answers itself, read from the app."""
    app = create_app(Settings(data_dir=tmp, simulator_enabled=False, _env_file=None))  # type: ignore[call-arg]
    served = set(app.routes)
    for route in app.prefixes:
        served |= {(m, f"{route.prefix}{{{route.param}}}{route.suffix}") for m in route.methods}
    return served


def _documented(doc: Doc) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        if not path.startswith("/api/")
        for method in item
    }


def _schema_validator(doc: Doc, schema: dict[str, Any]) -> Draft202012Validator:
    # Refs point into `#/components/schemas`: validate with the components beside the schema.
    return Draft202012Validator({**schema, "components": doc["components"]})


def _errors(doc: Doc, schema: dict[str, Any], value: Any) -> list[str]:
    return [e.message for e in _schema_validator(doc, schema).iter_errors(value)]


def _operation(doc: Doc, method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][path][method.lower()]
    return op


def _media_entry(content: dict[str, Any], ctype: str) -> dict[str, Any]:
    base = ctype.partition(";")[0].strip()
    if base in content:
        entry: dict[str, Any] = content[base]
        return entry
    wildcard = base.split("/")[0] + "/*"
    assert wildcard in content, f"answer type {ctype} is not documented (documented: {sorted(content)})"
    return content[wildcard]  # type: ignore[no-any-return]


def check_answer(doc: Doc, method: str, path: str, resp: httpx.Response) -> None:
    """`resp` is what the document says `method path` answers with this status: the status is
    documented, the content type too, and the body matches the documented schema."""
    responses = _operation(doc, method, path)["responses"]
    answer = responses.get(str(resp.status_code)) or responses.get("default")
    assert answer is not None, f"{method} {path}: status {resp.status_code} is not documented"
    for name in answer.get("headers", {}):
        if name.lower() == "x-request-id":
            assert resp.headers.get(name), f"{method} {path} {resp.status_code}: no {name} header"
    if method == "HEAD" or "content" not in answer:
        assert not resp.content, f"{method} {path} {resp.status_code}: a body that is not documented"
        return
    entry = _media_entry(answer["content"], resp.headers["content-type"])
    base = resp.headers["content-type"].partition(";")[0]
    if base == "application/json":
        problems = _errors(doc, entry["schema"], resp.json())
        assert not problems, f"{method} {path} {resp.status_code}: {problems}"
    elif base == "text/event-stream" and "x-item-schema" in entry:
        events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
        assert events and events[-1] == "[DONE]", events[-3:]
        for data in events[:-1]:
            problems = _errors(doc, entry["x-item-schema"], orjson.loads(data))
            assert not problems, f"{method} {path} event {data[:200]}: {problems}"
    else:
        assert entry["schema"]["type"] == "string" and resp.content


# --- the document itself ------------------------------------------------------------------------


def test_the_document_is_valid_openapi(doc: Doc) -> None:
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"].startswith("3.1")


def test_every_route_the_fast_path_serves_is_documented(doc: Doc, tmp_path: Path) -> None:
    served = _served(tmp_path)
    documented = _documented(doc)
    assert served - documented == set(), "served but not in /openapi.json"
    assert documented - served == set(), "in /openapi.json but not served by the fast path"
    admin = [p for p in doc["paths"] if p.startswith("/api/admin/")]
    assert admin and any(p.startswith("/api/user/") for p in doc["paths"]), "the admin/user APIs are gone"


def test_relay_routes_document_body_answers_errors_and_the_key(doc: Doc) -> None:
    scheme = next(iter(doc["components"]["securitySchemes"].items()))
    assert scheme[1]["type"] == "http" and scheme[1]["scheme"] == "bearer"
    for method, path in _documented(doc):
        op = _operation(doc, method, path)
        needs_key = path.startswith(("/v1/", "/mj/")) and path != "/mj/_callback"  # a token, not a key
        assert (op.get("security") == [{scheme[0]: []}]) is needs_key, (method, path)
        if method == "POST":
            assert op["requestBody"]["required"] and op["requestBody"]["content"], path
            assert "200" in op["responses"] and "default" in op["responses"], path
        if needs_key and method != "HEAD":
            error = op["responses"]["401"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/OpenAIErrorResponse"}, (method, path)
    chat = _operation(doc, "POST", "/v1/chat/completions")["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    edit = _operation(doc, "POST", "/v1/images/edits")["requestBody"]["content"]
    assert set(edit) == {"multipart/form-data"}
    request = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert request["additionalProperties"] is True and request["required"] == ["model", "messages"]


def test_routes_that_need_a_key_refuse_a_request_without_one(doc: Doc, gateway: Gateway) -> None:
    operations = sorted((m, p) for m, p in _documented(doc) if m != "HEAD")
    assert len(operations) >= 13
    for method, path in operations:
        op = _operation(doc, method, path)
        url = gateway.url + path.replace("{model}", "gpt-4o-mini").replace("{name}", "x").replace("{id}", "1")
        example = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
        resp = httpx.request(method, url, json=example, timeout=30)
        assert (resp.status_code == 401) is ("security" in op), (method, path, resp.status_code)
        check_answer(doc, method, path, resp)


def test_docs_pages_are_served(gateway: Gateway) -> None:
    for page in ("/docs", "/redoc"):
        resp = httpx.get(gateway.url + page)
        assert resp.status_code == 200 and "/openapi.json" in resp.text, page


def test_docs_can_be_turned_off(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_DOCS_ENABLED="false").start()
    for page in ("/openapi.json", "/docs", "/redoc"):
        resp = httpx.get(gw.url + page)
        assert resp.status_code == 404, page
        assert resp.json()["error"]["code"] == "not_found"
        assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(gw.url + "/api/user/balance", headers=_auth(gw)).status_code == 200
    assert gw.chat(gw.user_key).status_code == 200


# --- the documented examples work, and the real answers match the schemas ----------------------

EXAMPLES = [r.path for r in ROUTES if r.body is not None and r.body.example is not None]


@pytest.mark.parametrize("path", EXAMPLES)
def test_the_documented_example_works_and_its_answer_matches(doc: Doc, gateway: Gateway, path: str) -> None:
    body = _operation(doc, "POST", path)["requestBody"]["content"]["application/json"]
    assert not _errors(doc, body["schema"], body["example"])
    resp = httpx.post(gateway.url + path, json=body["example"], headers=_auth(gateway), timeout=60)
    assert resp.status_code == 200, resp.text
    check_answer(doc, "POST", path, resp)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        ),
        (
            "/v1/chat/completions",
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "What is the weather?"}],
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "weather",
                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                        },
                    }
                ],
                "tool_choice": "required",
                "n": 2,
            },
        ),
        (
            "/v1/chat/completions",
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Tell me a story"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ),
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-image", "messages": [{"role": "user", "content": "a red fox"}]},
        ),
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-image", "messages": [{"role": "user", "content": "a red fox"}], "stream": True},
        ),
        (
            "/v1/completions",
            {
                "model": "gpt-3.5-turbo-instruct",
                "prompt": ["a", "b"],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ),
        (
            "/v1/embeddings",
            {
                "model": "text-embedding-3-small",
                "input": ["one", "two"],
                "encoding_format": "base64",
                "dimensions": 64,
            },
        ),
        ("/v1/embeddings", {"model": "text-embedding-3-large", "input": [[1, 2, 3], [4, 5]]}),
        ("/v1/images/generations", {"model": "gpt-image-1", "prompt": "a logo", "quality": "low", "n": 2}),
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "a boat", "response_format": "b64_json"}),
        (
            "/v1/audio/speech",
            {
                "model": "gpt-4o-mini-tts",
                "input": "Hello",
                "voice": "nova",
                "response_format": "wav",
                "speed": 4,
            },
        ),
        (
            "/v1/audio/speech",
            {"model": "gpt-4o-mini-tts", "input": "Hello", "voice": {"id": "nova"}, "stream_format": "sse"},
        ),
    ],
)
def test_json_answers_match_the_schemas(doc: Doc, gateway: Gateway, path: str, body: dict[str, Any]) -> None:
    schema = _operation(doc, "POST", path)["requestBody"]["content"]["application/json"]["schema"]
    assert not _errors(doc, schema, body), "the test's own request does not match the document"
    resp = httpx.post(gateway.url + path, json=body, headers=_auth(gateway), timeout=60)
    assert resp.status_code == 200, resp.text
    check_answer(doc, "POST", path, resp)


def test_models_health_and_media_answers_match(doc: Doc, gateway: Gateway) -> None:
    url = gateway.url
    models = httpx.get(url + "/v1/models", headers=_auth(gateway))
    check_answer(doc, "GET", "/v1/models", models)
    model = models.json()["data"][0]["id"]
    check_answer(
        doc, "GET", "/v1/models/{model}", httpx.get(f"{url}/v1/models/{model}", headers=_auth(gateway))
    )
    check_answer(
        doc, "HEAD", "/v1/models/{model}", httpx.head(f"{url}/v1/models/{model}", headers=_auth(gateway))
    )
    missing = httpx.get(url + "/v1/models/no-such-model", headers=_auth(gateway))
    assert missing.status_code == 404
    check_answer(doc, "GET", "/v1/models/{model}", missing)
    for path in ("/healthz", "/readyz"):
        check_answer(doc, "GET", path, httpx.get(url + path))

    image = httpx.post(
        url + "/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "a lighthouse"},
        headers=_auth(gateway),
        timeout=60,
    ).json()["data"][0]["url"]
    media = "/media/{name}"
    for method, headers, status in [
        ("GET", {}, 200),
        ("HEAD", {}, 200),
        ("GET", {"Range": "bytes=0-9"}, 206),
        ("GET", {"Range": "bytes=0-9,20-29"}, 206),
        ("GET", {"Range": "bytes=99999999-"}, 416),
        ("GET", {"Range": "pages=1"}, 400),
    ]:
        resp = httpx.request(method, image, headers=headers)
        assert resp.status_code == status, (headers, resp.status_code)
        check_answer(doc, method, media, resp)
    gone = httpx.get(url + "/media/AAAAAAAAAAAAAAAAAAAAAA.png")
    assert gone.status_code == 404
    check_answer(doc, "GET", media, gone)


def test_readyz_when_not_ready_matches(doc: Doc, make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_SIMULATOR_ENABLED="false", AITRE_BOOTSTRAP="false").start()
    resp = httpx.get(gw.url + "/readyz")
    assert resp.status_code == 503
    check_answer(doc, "GET", "/readyz", resp)


# --- multipart routes ---------------------------------------------------------------------------


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 128, 255)).save(buf, "PNG")
    return buf.getvalue()


def _wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buf.getvalue()


# A valid form for each multipart route: (text fields, file fields).
FORMS: dict[str, tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]] = {
    "/v1/images/edits": (
        {"model": "gpt-image-1", "prompt": "add a sun", "quality": "low"},
        {"image": ("src.png", _png(), "image/png")},
    ),
    "/v1/audio/transcriptions": ({"model": "whisper-1"}, {"file": ("a.wav", _wav(), "audio/wav")}),
    "/v1/audio/translations": ({"model": "whisper-1"}, {"file": ("a.wav", _wav(), "audio/wav")}),
    "/v1/videos": ({"prompt": "a form"}, {}),
}


def _multipart_paths(doc: Doc) -> Iterator[str]:
    for path, item in doc["paths"].items():
        if "multipart/form-data" in item.get("post", {}).get("requestBody", {}).get("content", {}):
            yield path


def test_every_multipart_route_has_a_form_here(doc: Doc) -> None:
    assert set(_multipart_paths(doc)) == set(FORMS)


@pytest.mark.parametrize("path", sorted(FORMS))
def test_multipart_forms_required_fields_and_answers(doc: Doc, gateway: Gateway, path: str) -> None:
    data, files = FORMS[path]
    schema = doc["components"]["schemas"][
        _operation(doc, "POST", path)["requestBody"]["content"]["multipart/form-data"]["schema"][
            "$ref"
        ].rsplit("/", 1)[1]
    ]
    assert set(schema["required"]) == set(data) - {"quality"} | set(files)

    def post(fields: dict[str, str], uploads: dict[str, tuple[str, bytes, str]]) -> httpx.Response:
        # Text fields as parts too: a form without a file is still sent as multipart/form-data.
        parts: list[tuple[str, Any]] = [(k, (None, v)) for k, v in fields.items()] + list(uploads.items())
        return httpx.post(gateway.url + path, files=parts, headers=_auth(gateway), timeout=60)

    ok = post(data, files)
    assert ok.status_code == 200, ok.text
    check_answer(doc, "POST", path, ok)
    for name in schema["required"]:
        resp = post(
            {k: v for k, v in data.items() if k != name}, {k: v for k, v in files.items() if k != name}
        )
        assert resp.status_code == 400 and resp.json()["error"]["param"] == name, (name, resp.text)
        check_answer(doc, "POST", path, resp)
    formats = schema["properties"].get("response_format", {}).get("enum", [])
    if formats:
        for fmt in formats:
            if fmt == "diarized_json":
                continue  # a format of other models than the simulator's whisper-1
            resp = post({**data, "response_format": fmt}, files)
            assert resp.status_code == 200, (fmt, resp.text)
            check_answer(doc, "POST", path, resp)


# --- the documented required fields and bounds are the gateway's -------------------------------


def _resolve(doc: Doc, schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _candidates(schema: dict[str, Any]) -> Iterator[Any]:
    """Values just outside the bounds a schema states (its branches' too)."""
    for branch in schema.get("anyOf", []):
        yield from _candidates(branch)
    if "enum" in schema:
        yield "not-one-of-these"
    if "minimum" in schema:
        yield schema["minimum"] - 1
    if "maximum" in schema:
        yield schema["maximum"] + 1
    if "minLength" in schema:
        yield "x" * (schema["minLength"] - 1)
    if "maxLength" in schema:
        yield "x" * (schema["maxLength"] + 1)
    if schema.get("pattern") == r"\S":
        yield "   "
    if schema.get("minItems") == 1:
        yield []


def _bound_violations(doc: Doc, request: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, prop in request["properties"].items():
        for value in _candidates(prop):
            if _errors(doc, prop, value):  # outside every branch: the document forbids it
                yield name, value


# The MJ routes refuse bad input with HTTP 200 and midjourney-proxy's code 4 (tests/mj/).
@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.startswith("/v1/")])
def test_documented_required_fields_and_bounds_are_enforced(doc: Doc, gateway: Gateway, path: str) -> None:
    body = _operation(doc, "POST", path)["requestBody"]["content"]["application/json"]
    request = _resolve(doc, body["schema"])
    example = body["example"]
    cases: list[tuple[str, dict[str, Any]]] = [
        (name, {k: v for k, v in example.items() if k != name}) for name in request["required"]
    ]
    cases += [(name, {**example, name: value}) for name, value in _bound_violations(doc, request)]
    assert len(cases) >= 3
    for name, sent in cases:
        assert _errors(doc, body["schema"], sent), f"the document allows {sent}"
        resp = httpx.post(gateway.url + path, json=sent, headers=_auth(gateway), timeout=60)
        assert resp.status_code == 400, (name, str(sent)[:200], resp.status_code, resp.text[:300])
        assert resp.json()["error"]["param"] == name, (name, resp.text)
        check_answer(doc, "POST", path, resp)
