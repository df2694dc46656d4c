"""Button customIds: what a button does (for its price and task action), and how aitre shows it.

Upstream customIds carry the upstream's Discord message hash (`MJ::JOB::upsample::1::<hash>`).
Clients see the same id with aitre's task id in place of the hash, so that no upstream detail
leaks and a button names the task it belongs to; an action maps it back by looking it up among
the parent task's own buttons, never by parsing it (a forged or foreign id matches nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A Discord hash is a UUID; other proxies use long hex strings. Numbers and words never match.
_HASH = re.compile(r"^(?=.*[a-fA-F])[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}$|^[0-9a-fA-F]{24,}$")


@dataclass(frozen=True, slots=True)
class ButtonKind:
    action: str  # the new task's MJ action (UPSCALE, VARIATION, ...)
    model: str  # the billing model name, as new-api names them (`mj_upscale`, ...)
    modal: bool = False  # the upstream asks for a modal (prompt, mask) before it runs
    no_task: bool = False  # ❤️ bookmark: answered at once, nothing runs


def kind_of(custom_id: str) -> ButtonKind | None:
    """What pressing `custom_id` makes, after new-api's `CoverPlusActionToNormalAction` (names
    compared without case: docs spell both `MJ::JOB::` and `MJ::Job::`). None: not a button
    aitre knows how to price."""
    parts = custom_id.split("::")
    if len(parts) < 2 or parts[0].casefold() != "mj":
        return None
    family = parts[1].casefold()
    name = parts[2].casefold() if family == "job" and len(parts) > 2 else family
    if name.startswith("upsample"):
        return ButtonKind("UPSCALE", "mj_upscale")
    if name in ("variation", "reroll", "high_variation", "low_variation"):
        action = "REROLL" if name == "reroll" else "VARIATION"
        return ButtonKind(action, f"mj_{name}")
    if name.startswith("pan_"):
        return ButtonKind("PAN", "mj_pan")
    if name == "outpaint":
        return ButtonKind("ZOOM", "mj_zoom")
    if name == "customzoom":
        return ButtonKind("ZOOM", "mj_custom_zoom", modal=True)
    if name == "inpaint":
        return ButtonKind("INPAINT", "mj_inpaint", modal=True)
    if name in ("picreader", "promptanalyzer"):
        # A describe's or shorten's pick imagines that prompt, after a modal to edit it.
        return ButtonKind("IMAGINE", "mj_imagine", modal=True)
    if name == "picread":
        return ButtonKind("DESCRIBE", "mj_describe")
    if name == "bookmark":
        return ButtonKind("BOOKMARK", "mj_bookmark", no_task=True)
    return None


def present(custom_id: str, task_id: str, message_hash: str | None = None) -> str:
    """The customId as aitre's clients see it: the hash replaced by aitre's task id."""
    parts = custom_id.split("::")
    swapped = [task_id if p == message_hash or _HASH.match(p) else p for p in parts]
    return "::".join(swapped)


def find_upstream(
    buttons: list[dict[str, object]], wanted: str, task_id: str, message_hash: str | None
) -> str | None:
    """The upstream customId of the parent's button that the client pressed, or None."""
    key = wanted.casefold()
    for button in buttons:
        upstream = button.get("customId")
        if isinstance(upstream, str) and present(upstream, task_id, message_hash).casefold() == key:
            return upstream
    return None


def present_buttons(
    buttons: list[dict[str, object]], task_id: str, message_hash: str | None
) -> list[dict[str, object]]:
    shown = []
    for b in buttons:
        cid = b.get("customId")
        if not isinstance(cid, str):
            continue
        shown.append(
            {
                "customId": present(cid, task_id, message_hash),
                "emoji": b.get("emoji") or "",
                "label": b.get("label") or "",
                "style": b.get("style") if isinstance(b.get("style"), int) else 2,
                "type": b.get("type") if isinstance(b.get("type"), int) else 2,
            }
        )
    return shown
