"""The reader of Sora-by-chat answers (`adapters.chat_video_stream`) on the shapes upstreams were
seen to send (upstream-protocols.md), however their bytes are cut into reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aitre.adapters.chat_video_stream import ChatVideoStream
from aitre.relay.sse import EventTooLarge

VIDEO = "https://cdn.example.com/v/abc123.mp4"


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def content(*texts: str) -> bytes:
    return b"".join(chunk({"content": t}) for t in texts)


def read(data: bytes, sizes: list[int] | None = None) -> ChatVideoStream:
    answer = ChatVideoStream()
    pos = 0
    for size in sizes or [len(data)]:
        answer.feed(data[pos : pos + size])
        pos += size
    answer.feed(data[pos:])
    answer.end()
    return answer


# 22codex-style: a JSON echo of the order (its prompt says 50%, its link is the client's), the
# upstream's id, status lines, then the link.
QUOTE = (
    content(
        '```json\n{"prompt": "make it 50% bigger", "url": "https://client.example.com/mine.mp4"}\n```\n\n',
        "> ID: `task_01k7abc`\n\n",
        "> [预览](https://up.example.com/preview/task_01k7abc)\n\n",
        "> 排队中......\n\n",
        ">🏃 进度 36..\n\n",
        ">🏃 进度 76..\n\n",
        "> 生成完成 ✅\n\n",
        f"video generated successful,[click here]({VIDEO})",
    )
    + chunk({}, "stop")
    + b"data: [DONE]\n\n"
)

# sora2api: progress in reasoning, the video as an HTML block, finish_reason STOP
REASONING = (
    chunk({"role": "assistant", "reasoning_content": "**Generation Process Begins**\n", "content": None})
    + chunk({"reasoning_content": "**Video Generation Progress**: 45% (processing)\n", "content": None})
    + chunk({"reasoning_content": "**Video Generation Progress**: 90% (processing)\n", "content": None})
    + chunk({"content": f"```html\n<video src='{VIDEO}' controls></video>\n```"}, "STOP")
    + b"data: [DONE]\n\n"
)


def test_quote_style() -> None:
    answer = read(QUOTE)
    assert answer.url == VIDEO and answer.progress == 76 and answer.upstream_task == "task_01k7abc"
    assert answer.done and answer.finished and answer.error is None


def test_reasoning_style() -> None:
    answer = read(REASONING)
    assert answer.url == VIDEO and answer.progress == 90 and answer.done


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), max_size=200), st.sampled_from([QUOTE, REASONING]))
def test_reads_cut_anywhere_read_the_same(sizes: list[int], data: bytes) -> None:
    whole = read(data)
    cut = read(data.replace(b"\n\n", b"\r\n\r\n"), sizes)
    assert (cut.url, cut.progress, cut.upstream_task, cut.done) == (
        whole.url,
        whole.progress,
        whole.upstream_task,
        whole.done,
    )


def test_token_sized_pieces_and_other_progress_words() -> None:
    text = "> progress 37%\n\n> Progress: 61 %\n\n" + f"[下载视频]({VIDEO})\n\n"
    answer = read(content(*[text[i : i + 3] for i in range(0, len(text), 3)]))
    assert answer.url == VIDEO and answer.progress == 61


def test_links_video_files_win_images_never() -> None:
    answer = read(
        content(
            "![thumb](https://x.example.com/t.png)\n", f"see {VIDEO} \n", "[page](https://x.example.com/p)\n"
        )
    )
    assert answer.url == VIDEO
    other = read(content("[a](https://x.example.com/a)\n", "[b](https://x.example.com/b?id=1)\n"))
    assert other.url == "https://x.example.com/b?id=1"
    assert read(content("![only an image](https://x.example.com/t.png)\n")).url is None


def test_errors_and_answers_without_a_link() -> None:
    failed = read(
        content("> 进度 20\n\n")
        + b'data: {"error": {"message": "content policy", "code": "moderation_blocked"}}\n\n'
    )
    assert failed.error == "content policy" and failed.error_code == "moderation_blocked"
    assert failed.failure() == "content policy"
    silent = read(content("> 生成中.\n\n", "> ❌ 生成失败: 服务繁忙\n\n") + b"data: [DONE]\n\n")
    assert silent.url is None
    assert silent.failure() == "the upstream ended its answer without a video link: ❌ 生成失败: 服务繁忙"


def test_a_whole_json_answer() -> None:
    answer = ChatVideoStream()
    answer.feed_answer(orjson.dumps({"choices": [{"message": {"content": f"[下载视频]({VIDEO})\n\n"}}]}))
    answer.end()
    assert answer.url == VIDEO and answer.done
    bad = ChatVideoStream()
    bad.feed_answer(b"<html>")
    assert bad.error and bad.url is None


def test_bounded() -> None:
    with pytest.raises(EventTooLarge):
        ChatVideoStream().feed(b"data: " + b"x" * (9 * 1024 * 1024))
    long_line = read(content("y" * 200_000 + f" {VIDEO}\n"))  # read in pieces, no error
    assert long_line.error is None
    assert read(content(f"[x](https://x.example.com/{'a' * 5000}.mp4)\n")).url is None  # too long a link
