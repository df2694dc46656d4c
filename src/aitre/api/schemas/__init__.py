"""Pydantic models of the public (OpenAI-compatible) request and answer shapes, for the OpenAPI
document only: the relay handlers read bodies with orjson and pass them on; these models
describe what they accept and what comes back (`api.openapi_public`)."""
