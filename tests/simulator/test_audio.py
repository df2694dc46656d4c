"""`/v1/audio/speech`, `/v1/audio/transcriptions`, `/v1/audio/translations`: real audio, decoded."""

from __future__ import annotations

import base64
import io
import re
import wave

import httpx
import openai
import orjson
import pytest
from openai.types.audio import TranslationVerbose

from tests.simulator.media import audio_seconds

TEXT = "The quick brown fox jumped over the lazy dog and ran into the woods"  # 14 words: 5.6 s
SECONDS = 14 / 2.5
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
TAGGED = ("mp3", "opus", "aac", "flac", "wav")


def _speech(sdk: openai.OpenAI, fmt: str, text: str = TEXT, **kw: object) -> tuple[bytes, str]:
    resp = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format=fmt, **kw)  # type: ignore[arg-type]
    return resp.content, resp.response.headers["content-type"]


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
def test_speech_formats_decode_to_the_expected_duration(sdk: openai.OpenAI, fmt: str) -> None:
    data, ctype = _speech(sdk, fmt)
    assert ctype == CONTENT_TYPES[fmt]
    if fmt == "pcm":
        assert len(data) == round(SECONDS * 24000) * 2
    else:
        assert abs(audio_seconds(data) - SECONDS) < SECONDS * 0.2


def test_speed_and_determinism(sdk: openai.OpenAI) -> None:
    fast, _ = _speech(sdk, "pcm", speed=2.0)
    assert len(fast) == round(SECONDS / 2 * 24000) * 2
    a, _ = _speech(sdk, "mp3")
    b, _ = _speech(sdk, "mp3")
    assert a == b
    other = sdk.audio.speech.create(model="tts-1-hd", voice="onyx", input=TEXT, response_format="mp3")
    assert other.content != a


def test_speech_streams_in_pieces(http: httpx.Client) -> None:
    body = {"model": "tts", "voice": "coral", "input": "word " * 200, "response_format": "wav"}
    with http.stream("POST", "/v1/audio/speech", json=body) as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        sizes = [len(p) for p in r.iter_raw()]
    assert len(sizes) > 10 and max(sizes) <= 16 * 1024


def test_speech_sse(http: httpx.Client) -> None:
    body = {
        "model": "gpt-4o-mini-tts",
        "voice": "sage",
        "input": TEXT,
        "response_format": "pcm",
        "stream_format": "sse",
    }
    with http.stream("POST", "/v1/audio/speech", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    parsed = [orjson.loads(e) for e in events]
    assert {p["type"] for p in parsed[:-1]} == {"speech.audio.delta"}
    audio = b"".join(base64.b64decode(p["audio"]) for p in parsed[:-1])
    assert len(audio) == round(SECONDS * 24000) * 2
    done = parsed[-1]
    assert done["type"] == "speech.audio.done"
    assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + done["usage"]["output_tokens"]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "tts-1", "voice": "alloy"},
        {"model": "tts-1", "input": "hi"},
        {"model": "tts-1", "voice": "alloy", "input": "x" * 4097},
        {"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 4.5},
        {"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 0.1},
        {"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "ogg"},
        {"model": "tts-1", "voice": "alloy", "input": "hi", "stream_format": "sse"},
    ],
)
def test_speech_bad_input(http: httpx.Client, body: dict[str, object]) -> None:
    r = http.post("/v1/audio/speech", json=body)
    assert r.status_code == 400, r.text


def test_speech_unknown_model_and_faults(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.audio.speech.create(model="tts-2", voice="alloy", input="hi")
    with pytest.raises(openai.InternalServerError):
        sdk.audio.speech.create(
            model="tts-1", voice="alloy", input="hi", extra_headers={"x-sim-fault": "status=503"}
        )
    body = {"model": "tts-1", "voice": "alloy", "input": "word " * 300, "response_format": "wav"}
    received = 0
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/audio/speech", json=body, headers={"x-sim-fault": "truncate=2"}) as r,
    ):
        for piece in r.iter_raw():
            received += len(piece)
    assert 0 < received <= 2 * 12 * 1024


@pytest.mark.parametrize("fmt", TAGGED)
def test_round_trip_returns_the_text(sdk: openai.OpenAI, fmt: str) -> None:
    data, _ = _speech(sdk, fmt)
    resp = sdk.audio.transcriptions.create(model="whisper-1", file=(f"speech.{fmt}", data))
    assert resp.text == TEXT
    assert resp.usage is not None and resp.usage.type == "duration"
    assert resp.usage.seconds == pytest.approx(SECONDS, rel=0.2, abs=1)


def test_verbose_json_words_and_segments(sdk: openai.OpenAI) -> None:
    data, _ = _speech(sdk, "mp3")
    resp = sdk.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.mp3", data),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    assert resp.text == TEXT and resp.language == "english"
    assert abs(resp.duration - SECONDS) < SECONDS * 0.2
    assert resp.words is not None and [w.word for w in resp.words] == TEXT.split()
    assert resp.words[-1].end == pytest.approx(resp.duration, abs=0.02)
    assert resp.segments is not None and resp.segments[0].start == 0
    assert "".join(s.text for s in resp.segments).strip() == TEXT
    assert all(s.tokens for s in resp.segments)


def test_subtitles(sdk: openai.OpenAI) -> None:
    data, _ = _speech(sdk, "wav", text="word " * 40)  # 16 s: more than one cue
    srt = sdk.audio.transcriptions.create(model="whisper-1", file=("a.wav", data), response_format="srt")
    blocks = srt.strip().split("\n\n")
    assert len(blocks) >= 2
    stamp = r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d"
    for i, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == str(i) and re.fullmatch(stamp, lines[1]) and lines[2]
    assert blocks[-1].split("\n")[1].endswith("00:00:16,000")
    vtt = sdk.audio.transcriptions.create(model="whisper-1", file=("a.wav", data), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)", vtt)
    assert cues[0][0] == "00:00:00.000" and cues[-1][1] == "00:00:16.000"
    text = sdk.audio.transcriptions.create(model="whisper-1", file=("a.wav", data), response_format="text")
    assert text.strip() == ("word " * 40).strip()


def test_unknown_audio_gets_deterministic_words(sdk: openai.OpenAI) -> None:
    data, _ = _speech(sdk, "pcm")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(data)
    first = sdk.audio.transcriptions.create(model="whisper-1", file=("plain.wav", buf.getvalue()))
    second = sdk.audio.transcriptions.create(model="whisper-1", file=("plain.wav", buf.getvalue()))
    assert first.text == second.text and first.text != TEXT
    assert abs(len(first.text.split()) - SECONDS * 2.5) <= 2


def test_gpt4o_transcribe_token_usage(sdk: openai.OpenAI, http: httpx.Client) -> None:
    data, _ = _speech(sdk, "opus")
    resp = sdk.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=("a.ogg", data))
    assert resp.text == TEXT
    assert resp.usage is not None and resp.usage.type == "tokens"
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    r = http.post(
        "/v1/audio/transcriptions",
        data={"model": "gpt-4o-transcribe", "response_format": "verbose_json"},
        files={"file": ("a.ogg", data)},
    )
    assert r.status_code == 400


def test_translation(sdk: openai.OpenAI, http: httpx.Client) -> None:
    # The SDK marks translations.create deprecated (a warning is an error here): plain HTTP.
    data, _ = _speech(sdk, "flac")
    r = http.post(
        "/v1/audio/translations",
        data={"model": "whisper-1", "response_format": "verbose_json"},
        files={"file": ("a.flac", data)},
    )
    resp = TranslationVerbose.model_validate(r.json())
    assert resp.text == TEXT and resp.language == "english" and r.json()["task"] == "translate"
    r = http.post("/v1/audio/translations", data={"model": "whisper-1"}, files={"file": ("a.flac", data)})
    assert r.json()["text"] == TEXT
    r = http.post(
        "/v1/audio/translations", data={"model": "gpt-4o-transcribe"}, files={"file": ("a.flac", data)}
    )
    assert r.status_code == 404
    r = http.post(
        "/v1/audio/translations",
        data={"model": "whisper-1"},
        files={"file": ("a.flac", data)},
        headers={"x-sim-fault": "status=503"},
    )
    assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"


def test_transcription_bad_input(http: httpx.Client) -> None:
    r = http.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"other": ("x", b"x")})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("file is required")
    r = http.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"file": ("a.mp3", b"\x00garbage" * 64)},
    )
    assert r.status_code == 400 and "corrupted or unsupported" in r.json()["error"]["message"]
    r = http.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper-1", "timestamp_granularities[]": "word"},
        files={"file": ("a.mp3", b"x")},
    )
    assert r.status_code == 400
    r = http.post("/v1/audio/transcriptions", data={"model": "whisper-9"}, files={"file": ("a.mp3", b"x")})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_transcription_fault(sdk: openai.OpenAI) -> None:
    data, _ = _speech(sdk, "mp3", text="short")
    with pytest.raises(openai.InternalServerError):
        sdk.audio.transcriptions.create(
            model="whisper-1", file=("a.mp3", data), extra_headers={"x-sim-fault": "status=503"}
        )
