"""Turn descriptions of the fast path's routes (`PublicRoute`) into OpenAPI paths and merge them,
with their schemas, into the document FastAPI builds for the admin and user APIs.

FastAPI never sees these routes (`api.fastpath` answers them before it), so it cannot describe
them; describing them as data here keeps FastAPI off the hot path. Schemas come from pydantic
models (`api.schemas`), rendered once by pydantic with refs into `#/components/schemas`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema


@dataclass(frozen=True, slots=True)
class AnyOf:
    """A body that has one of several shapes (e.g. by the request's `response_format`)."""

    models: tuple[type[BaseModel], ...]


# A body's schema: a model (rendered as a `$ref`), several, or a JSON Schema written out.
Schema = type[BaseModel] | AnyOf | dict[str, Any]
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "ApiKey"  # also the admin and user APIs' (`api.deps`): one scheme for every route
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "An aitre API key: `Authorization: Bearer sk-...` (admin routes need an admin's key).",
}
REQUEST_ID = {
    "description": "The gateway's id for this request (in its logs and usage records).",
    "schema": {"type": "string"},
}


@dataclass(frozen=True, slots=True)
class Events:
    """A `text/event-stream` answer whose `data:` events each hold one `item` (and a last
    `data: [DONE]` when `done`)."""

    item: type[BaseModel]
    description: str
    done: bool = True


Content = Schema | Events
Ref = Callable[[Schema], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Body:
    content: dict[str, Schema]  # media type -> schema
    description: str = ""
    example: dict[str, Any] | None = None  # sent as is by tests/test_openapi.py: it must work


@dataclass(frozen=True, slots=True)
class Answer:
    description: str
    content: dict[str, Content] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # name -> description (string values)
    request_id: bool = True  # has the `X-Request-Id` header (answers made by Starlette do not)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # "path", "header" or "query"
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class PublicRoute:
    """Methods of one path the fast path serves that answer alike (a path whose methods answer
    differently has a route for each)."""

    methods: tuple[str, ...]
    path: str
    operation_id: str
    summary: str
    tag: str
    answers: dict[int | str, Answer]
    description: str = ""
    body: Body | None = None
    params: tuple[Param, ...] = ()
    auth: bool = True


class _Generator(GenerateJsonSchema):
    """Pydantic's JSON Schema without `default: null`: a field left out is not one sent as null
    (the upstream applies its own default)."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        out = super().default_schema(schema)
        if "default" in out and out["default"] is None:
            del out["default"]
        return out


def add_public_routes(doc: dict[str, Any], routes: Sequence[PublicRoute]) -> dict[str, Any]:
    """`doc` with `routes` in its paths and their models in its components (changed in place)."""
    models = list(dict.fromkeys(_models(routes)))
    refs, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template=REF, schema_generator=_Generator
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in defs.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name!r} in the OpenAPI document")
    components.setdefault("securitySchemes", {}).setdefault(SECURITY_SCHEME, BEARER)

    def ref(schema: Schema) -> dict[str, Any]:
        if isinstance(schema, AnyOf):
            return {"anyOf": [refs[(m, "validation")] for m in schema.models]}
        return refs[(schema, "validation")] if isinstance(schema, type) else schema

    paths = doc.setdefault("paths", {})
    for route in routes:  # one path may have several routes, each with its own methods
        item = paths.setdefault(route.path, {})
        for method in route.methods:
            if method.lower() in item:
                raise ValueError(f"{method} {route.path} is in the OpenAPI document twice")
            item[method.lower()] = _operation(route, method, ref)
    return doc


def _models(routes: Sequence[PublicRoute]) -> Iterator[type[BaseModel]]:
    for route in routes:
        contents: list[Content] = list(route.body.content.values()) if route.body else []
        for answer in route.answers.values():
            contents.extend(answer.content.values())
        for content in contents:
            if isinstance(content, Events):
                yield content.item
            elif isinstance(content, AnyOf):
                yield from content.models
            elif isinstance(content, type):
                yield content


def _operation(route: PublicRoute, method: str, ref: Ref) -> dict[str, Any]:
    head = method == "HEAD"
    op: dict[str, Any] = {
        "tags": [route.tag],
        "summary": route.summary,
        "operationId": route.operation_id + ("Head" if head else ""),
    }
    if route.description:
        op["description"] = route.description
    if route.params:
        op["parameters"] = [_param(p) for p in route.params]
    if route.body is not None:
        body: dict[str, Any] = {"required": True, "content": {}}
        if route.body.description:
            body["description"] = route.body.description
        for media_type, schema in route.body.content.items():
            entry: dict[str, Any] = {"schema": ref(schema)}
            if route.body.example is not None and media_type == "application/json":
                entry["example"] = route.body.example
            body["content"][media_type] = entry
        op["requestBody"] = body
    op["responses"] = {str(status): _answer(a, ref, head) for status, a in route.answers.items()}
    if route.auth:
        op["security"] = [{SECURITY_SCHEME: []}]
    return op


def _param(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "description": param.description,
        "schema": {"type": "string"},
    }


def _answer(answer: Answer, ref: Ref, head: bool) -> dict[str, Any]:
    headers = {"X-Request-Id": REQUEST_ID} if answer.request_id else {}
    headers.update({k: {"description": v, "schema": {"type": "string"}} for k, v in answer.headers.items()})
    out: dict[str, Any] = {"description": answer.description}
    if headers:
        out["headers"] = headers
    if head or not answer.content:
        return out  # a HEAD answer has the headers of the GET one and no body
    content: dict[str, Any] = {}
    for media_type, schema in answer.content.items():
        if isinstance(schema, Events):
            done = " The stream ends with `data: [DONE]`." if schema.done else ""
            content[media_type] = {
                "schema": {
                    "type": "string",
                    "description": f"Server-sent events, each `data: <JSON>`: {schema.description}{done}",
                },
                # OpenAPI 3.2 calls this `itemSchema`; 3.1 has no place for an event's schema.
                "x-item-schema": ref(schema.item),
            }
        else:
            content[media_type] = {"schema": ref(schema)}
    out["content"] = content
    return out
