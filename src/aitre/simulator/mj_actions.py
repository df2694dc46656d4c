"""What a button does: `/mj/submit/action` turns a parent task and one of its buttons' customIds
into the next task's action and picture, or into a MODAL task that `/mj/submit/modal` finishes
with a prompt (custom zoom, describe's and shorten's picks) and a mask (vary region)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aitre.simulator.mj import MjTask, buttons, grid_of
from aitre.simulator.mj_images import Grid, Picture, Scaled, Tile, derived_tile
from aitre.simulator.mj_text import pick, tile_size, zoom_factor

_SHORTENED = "## Shortened prompts"


@dataclass(slots=True)
class Plan:
    action: str
    label: str  # for the task's description, as in `/up <id> U1`
    picture: Picture | None = None
    buttons: str = "grid"
    modal: str = ""  # inpaint | zoom | imagine: the task waits for /mj/submit/modal
    prompt: str | None = None  # a picked suggestion replaces the parent's prompt
    bookmark: bool = False  # ❤️: no new task
    describe_again: bool = False  # describe's 🔄: describe the same image again


def find_button(parent: MjTask, custom_id: str) -> dict[str, object] | None:
    """The parent's button with this customId. Case does not matter: docs spell the shorten and
    describe picks both `MJ::JOB::` and `MJ::Job::`."""
    wanted = custom_id.casefold()
    for button in buttons(parent.buttons, parent.hash):
        if str(button["customId"]).casefold() == wanted:
            return button
    return None


def plan(parent: MjTask, custom_id: str, key: str) -> Plan | None:
    """The next task for a button of `parent` (None: that is not one of its buttons). `key`
    names the new picture (the new task's id)."""
    button = find_button(parent, custom_id)
    if button is None:
        return None
    label = str(button["label"] or button["emoji"])
    parts = custom_id.split("::")
    family = parts[1].casefold()
    if family == "job":
        return _job(parent, parts[2].casefold(), parts[3], key, label)
    pic = parent.picture
    if family == "outpaint" and pic is not None:
        zoom = 2.0 if parts[2] == "50" else 1.5
        w, h = derived_tile(pic, "zoom")
        return Plan("ZOOM", label, Grid(key, parent.prompt_en, w, h, "zoom", pic, zoom))
    if family == "customzoom":
        return Plan("ZOOM", label, pic, modal="zoom")
    if family == "inpaint":
        return Plan("INPAINT", label, pic, modal="inpaint")
    if family == "picread":
        return Plan("DESCRIBE", label, pic, "describe", describe_again=True)
    if family == "bookmark":
        return Plan("ACTION", label, bookmark=True)
    return None


def _job(parent: MjTask, kind: str, index: str, key: str, label: str) -> Plan | None:
    pic, grid, prompt = parent.picture, grid_of(parent.picture), parent.prompt_en
    n = int(index) if index.isdigit() else 0
    if kind == "upsample" and grid is not None:
        return Plan("UPSCALE", label, Tile(key, grid, n), "upscaled")
    if kind == "variation" and grid is not None:
        # The same tile as U<n> would give, under a key of its own so all its variations share it.
        tile = Tile(f"{grid.key}#{n}", grid, n)
        w, h = derived_tile(tile, "vary")
        return Plan("VARIATION", label, Grid(key, prompt, w, h, "vary", tile))
    if kind == "reroll" and grid is not None:
        return Plan("REROLL", "R", replace(grid, key=key, seed=key))
    if kind in ("low_variation", "high_variation") and pic is not None:
        op = "vary_subtle" if kind == "low_variation" else "vary_strong"
        w, h = derived_tile(pic, op)
        return Plan("VARIATION", label, Grid(key, prompt, w, h, op, pic))
    if kind.startswith("upsample_") and pic is not None:
        return Plan("UPSCALE", label, Scaled(key, pic, 2), "upscaled2x")
    if kind.startswith("pan_") and pic is not None:
        w, h = derived_tile(pic, kind)
        return Plan("PAN", label, Grid(key, prompt, w, h, kind, pic))
    text = parent.final_prompt or ""
    if kind == "picreader":
        return Plan("IMAGINE", label, modal="imagine", prompt=pick(text, n))
    if kind == "promptanalyzer":
        return Plan("IMAGINE", label, modal="imagine", prompt=pick(text.partition(_SHORTENED)[2], n))
    return None


def modal_picture(task: MjTask, prompt: str, mask: bytes | None) -> Picture | None:
    """The picture a MODAL task makes once given its prompt (and, for vary region, the mask as
    PNG); None when the parent's picture is needed and gone."""
    if task.modal == "imagine":
        w, h = tile_size(prompt)
        return Grid(task.id, prompt, w, h)
    parent = task.picture
    if parent is None:
        return None
    if task.modal == "zoom":
        w, h = derived_tile(parent, "zoom")
        return Grid(task.id, prompt, w, h, "zoom", parent, zoom_factor(prompt))
    w, h = derived_tile(parent, "region")
    return Grid(task.id, prompt, w, h, "region", parent, inputs=(mask,) if mask else ())
