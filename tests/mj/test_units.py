"""The MJ pieces that need no server: customIds, speed modes, image checks, upstream states."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from aitre.adapters.mj_proxy import normalise, progress_of
from aitre.billing.prices import ModelPrice
from aitre.mj.answers import Refusal
from aitre.mj.custom_ids import find_upstream, kind_of, present, present_buttons
from aitre.mj.inputs import decode_data_url
from aitre.mj.pricing import asked_mode, units

HASH = "3dbbd469-36af-4a0f-8f02-df6c579e7011"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def test_custom_ids_carry_aitre_task_ids_and_map_back() -> None:
    assert (
        present(f"MJ::JOB::upsample::2::{HASH}", "1719252589390291")
        == "MJ::JOB::upsample::2::1719252589390291"
    )
    assert present(f"MJ::Outpaint::50::1::{HASH}::SOLO", "7") == "MJ::Outpaint::50::1::7::SOLO"
    assert present("MJ::CustomZoom::abcdef0123456789abcdef0123456789", "7") == "MJ::CustomZoom::7"
    assert present("MJ::Job::PicReader::2", "7") == "MJ::Job::PicReader::2"  # no hash: unchanged
    assert present("MJ::JOB::upsample::1::deadbeef", "7", "deadbeef") == "MJ::JOB::upsample::1::7"
    buttons: list[dict[str, object]] = [
        {"customId": f"MJ::JOB::upsample::1::{HASH}", "label": "U1", "emoji": "", "style": 2, "type": 2},
        {"customId": "MJ::Job::PicReader::1", "label": "1"},
        {"label": "no id"},
    ]
    shown = present_buttons(buttons, "42", None)
    assert [b["customId"] for b in shown] == ["MJ::JOB::upsample::1::42", "MJ::Job::PicReader::1"]
    assert shown[1] == {"customId": "MJ::Job::PicReader::1", "emoji": "", "label": "1", "style": 2, "type": 2}
    assert find_upstream(buttons, "mj::job::UPSAMPLE::1::42", "42", None) == f"MJ::JOB::upsample::1::{HASH}"
    assert find_upstream(buttons, "MJ::JOB::PicReader::1", "42", None) == "MJ::Job::PicReader::1"
    assert find_upstream(buttons, f"MJ::JOB::upsample::1::{HASH}", "42", None) is None  # the raw hash
    assert find_upstream(buttons, "MJ::JOB::upsample::1::43", "42", None) is None  # another task's


@pytest.mark.parametrize(
    ("custom_id", "action", "model", "modal"),
    [
        (f"MJ::JOB::upsample::3::{HASH}", "UPSCALE", "mj_upscale", False),
        (f"MJ::JOB::upsample_v6_2x_subtle::1::{HASH}::SOLO", "UPSCALE", "mj_upscale", False),
        (f"MJ::JOB::variation::1::{HASH}", "VARIATION", "mj_variation", False),
        (f"MJ::JOB::high_variation::1::{HASH}::SOLO", "VARIATION", "mj_high_variation", False),
        (f"MJ::JOB::reroll::0::{HASH}::SOLO", "REROLL", "mj_reroll", False),
        (f"MJ::JOB::pan_left::1::{HASH}::SOLO", "PAN", "mj_pan", False),
        (f"MJ::Outpaint::75::1::{HASH}::SOLO", "ZOOM", "mj_zoom", False),
        (f"MJ::CustomZoom::{HASH}", "ZOOM", "mj_custom_zoom", True),
        (f"MJ::Inpaint::1::{HASH}::SOLO", "INPAINT", "mj_inpaint", True),
        ("MJ::Job::PicReader::4", "IMAGINE", "mj_imagine", True),
        ("MJ::JOB::PromptAnalyzer::1", "IMAGINE", "mj_imagine", True),
        ("MJ::Picread::Retry", "DESCRIBE", "mj_describe", False),
    ],
)
def test_what_a_button_makes(custom_id: str, action: str, model: str, modal: bool) -> None:
    kind = kind_of(custom_id)
    assert kind is not None and (kind.action, kind.model, kind.modal) == (action, model, modal)


def test_unknown_buttons() -> None:
    assert kind_of("MJ::Settings::x") is None and kind_of("hello") is None and kind_of("") is None
    bookmark = kind_of(f"MJ::BOOKMARK::{HASH}")
    assert bookmark is not None and bookmark.no_task


def test_speed_modes_and_their_prices() -> None:
    assert asked_mode("a cat --relax") == "relax"
    assert asked_mode("a cat --fast --TURBO") == "turbo"
    assert asked_mode("a cat --relaxed") is None and asked_mode("a-cat--relax") is None
    assert asked_mode(None) is None
    price = ModelPrice.parse("mj_imagine", {"per_call": "0.1", "image_prices": {"relax": "0.05"}})
    assert units(price, None, Decimal(1), 500_000) == 50_000
    assert units(price, "relax", Decimal(2), 500_000) == 50_000
    assert units(price, "turbo", Decimal(1), 500_000) == 50_000  # no turbo entry: the per-call price


def test_images_must_be_real_base64_pictures() -> None:
    encoded = base64.b64encode(PNG).decode()
    assert decode_data_url("data:image/png;base64," + encoded, "f", 1000) == PNG
    assert decode_data_url(encoded, "f", 1000) == PNG  # bare base64
    for bad in (
        "data:image/png;base64,@@@",
        "data:image/png," + encoded,
        base64.b64encode(b"GIF? no").decode(),
    ):
        with pytest.raises(Refusal) as exc:
            decode_data_url(bad, "f", 1000)
        assert exc.value.code == 4
    with pytest.raises(Refusal):
        decode_data_url(encoded, "f", len(PNG) - 1)


def test_upstream_tasks_are_kept_bounded() -> None:
    t = {
        "status": "SUCCESS",
        "progress": "100%",
        "prompt": "p" * 50_000,
        "imageUrl": "http://x/y.png",
        "buttons": [{"customId": f"MJ::JOB::upsample::{i}::{HASH}", "label": f"U{i}"} for i in range(100)]
        + [{"customId": "x" * 600}, "junk"],
        "properties": {
            "discordInstanceId": "secret",
            "finalPrompt": "f",
            "messageHash": HASH,
            "mode": "RELAX",
        },
    }
    kept = normalise(t)
    assert len(kept["prompt"]) == 16_000 and len(kept["buttons"]) == 40
    assert kept["properties"] == {"finalPrompt": "f", "messageHash": HASH} and kept["mode"] == "relax"
    assert [progress_of(v) for v in ("45%", "", None, "100%", "abc", "250")] == [45, 0, 0, 100, 0, 100]
