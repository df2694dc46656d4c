"""A body naming a key twice is refused: the gateway's checks and the upstream could otherwise
act on different values (a key's model allow-list passes "gpt-4o-mini", the upstream reads the
other "model")."""

from __future__ import annotations

import httpx

from tests.support.processes import Gateway


def _post(gateway: Gateway, path: str, content: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gateway.user_key}", "Content-Type": "application/json"}
    return httpx.post(gateway.api + path, content=content, headers=headers, timeout=30)


def test_duplicate_keys_are_refused(gateway: Gateway) -> None:
    for path, body in [
        (
            "/chat/completions",
            b'{"model": "gpt-4o-mini", "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}',
        ),
        (
            "/chat/completions",
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi", "role": "system"}]}',
        ),
        (
            "/chat/completions",
            b'{"model": "gpt-4o-mini", "stream": false, "messages": [], "str\\u0065am": true}',
        ),
        ("/embeddings", b'{"model": "text-embedding-3-small", "input": "a", "input": "b"}'),
    ]:
        resp = _post(gateway, path, body)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "duplicate_key"


def test_equal_keys_in_different_objects_are_fine(gateway: Gateway) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a: b"}, {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}]}'
    assert _post(gateway, "/chat/completions", body).status_code == 200


def test_a_form_field_sent_twice_is_refused(gateway: Gateway) -> None:
    resp = httpx.post(
        gateway.api + "/audio/transcriptions",
        files=[
            ("model", (None, "whisper-1")),
            ("model", (None, "gpt-4o-transcribe")),
            ("file", ("a.wav", b"RIFF....WAVE", "audio/wav")),
        ],
        headers={"Authorization": f"Bearer {gateway.user_key}"},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "model"
