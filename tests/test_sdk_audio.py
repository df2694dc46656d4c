"""Speech, transcription and translation through the gateway with the official SDK; the audio
itself is decoded and measured."""

from __future__ import annotations

import io
from collections.abc import Callable

import av
import httpx
import openai
import pytest

from tests.support.clients import client
from tests.support.processes import Gateway

TEXT = "The quick brown fox jumped over the lazy dog."


def _duration(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        return samples / stream.rate


def _speech(gw: Gateway, fmt: str, **extra: object) -> tuple[bytes, int, str]:
    with client(gw).audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=TEXT,
        response_format=fmt,
        **extra,  # type: ignore[arg-type]
    ) as resp:
        pieces = list(resp.iter_bytes())
        return b"".join(pieces), len(pieces), resp.headers["content-type"]


@pytest.mark.parametrize(
    ("fmt", "ctype"),
    [
        ("mp3", "audio/mpeg"),
        ("opus", "audio/opus"),
        ("aac", "audio/aac"),
        ("flac", "audio/flac"),
        ("wav", "audio/wav"),
    ],
)
def test_speech_formats_decode_to_the_right_length(gateway: Gateway, fmt: str, ctype: str) -> None:
    data, _, content_type = _speech(gateway, fmt)
    assert content_type.startswith(ctype)
    seconds = _duration(data)
    expected = len(TEXT.split()) / 2.5
    assert expected * 0.7 < seconds < expected * 1.3


def test_speech_pcm_and_speed(gateway: Gateway) -> None:
    data, _, _ = _speech(gateway, "pcm")
    seconds = len(data) / (24000 * 2)
    fast, _, _ = _speech(gateway, "pcm", speed=2.0)
    assert len(fast) < len(data) * 0.6
    assert seconds > 1.0


def test_speech_is_streamed_in_pieces(gateway: Gateway) -> None:
    long = " ".join(["word"] * 400)
    with client(gateway).audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=long, response_format="wav"
    ) as resp:
        pieces = [p for p in resp.iter_bytes(chunk_size=None) if p]  # type: ignore[arg-type]
    assert len(pieces) > 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tts-1", "voice": "alloy"}, "input"),
        ({"model": "tts-1", "input": "x"}, "voice"),
        ({"model": "tts-1", "input": "x", "voice": "alloy", "speed": 9}, "speed"),
        ({"model": "tts-1", "input": "x", "voice": "alloy", "response_format": "ogg"}, "response_format"),
    ],
)
def test_speech_bad_input(gateway: Gateway, body: dict[str, object], param: str) -> None:
    r = httpx.post(
        gateway.api + "/audio/speech", headers={"Authorization": f"Bearer {gateway.user_key}"}, json=body
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_transcription_round_trip_and_formats(gateway: Gateway) -> None:
    wav, _, _ = _speech(gateway, "wav")
    c = client(gateway)
    raw = c.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.wav", wav, "audio/wav")
    )
    assert raw.parse().text == TEXT
    rid = raw.headers["x-request-id"]
    verbose = c.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", wav, "audio/wav"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.words and verbose.segments
    assert abs(verbose.duration - _duration(wav)) < 0.5
    text = c.audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", wav, "audio/wav"), response_format="text"
    )
    assert str(text).strip() == TEXT
    srt = c.audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", wav, "audio/wav"), response_format="srt"
    )
    assert "-->" in str(srt) and str(srt).lstrip().startswith("1")
    vtt = c.audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", wav, "audio/wav"), response_format="vtt"
    )
    assert str(vtt).startswith("WEBVTT")
    assert gateway.wait_log(rid)["endpoint"] == "audio.transcriptions"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK deprecates translations
def test_translation(gateway: Gateway) -> None:
    mp3, _, _ = _speech(gateway, "mp3")
    resp = client(gateway).audio.translations.create(
        model="whisper-1", file=("speech.mp3", mp3, "audio/mpeg")
    )
    assert resp.text == TEXT


def test_missing_and_unreadable_files_are_clear_400s(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.user_key}"}
    missing = httpx.post(
        gateway.api + "/audio/transcriptions",
        headers=headers,
        data={"model": "whisper-1"},
        files={"x": ("n", b"", "text/plain")},
    )
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"
    with pytest.raises(openai.BadRequestError) as exc:
        client(gateway).audio.transcriptions.create(
            model="whisper-1", file=("junk.mp3", b"this is not audio at all" * 10, "audio/mpeg")
        )
    assert exc.value.code == "invalid_file_format"
    not_multipart = httpx.post(
        gateway.api + "/audio/transcriptions", headers=headers, json={"model": "whisper-1"}
    )
    assert not_multipart.status_code == 400


def test_audio_size_limit(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway(AITRE_AUDIO_MAX_BYTES="2000").start()
    wav, _, _ = _speech(gw, "wav")
    assert len(wav) > 2000
    with pytest.raises(openai.APIStatusError) as exc:
        client(gw).audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav, "audio/wav"))
    assert exc.value.status_code == 413
