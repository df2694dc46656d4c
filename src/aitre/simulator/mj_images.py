"""Images of the MJ simulator, drawn only when someone downloads them.

A task keeps a small recipe (`Picture`), not pixels: a grid of four tiles from a prompt, one
tile of a grid (upscale), a grid derived from another picture (variation, zoom, pan, region),
a mix of uploads (blend), an upload itself (describe), a face pasted onto a target (swap).
Recipes point at their parent's recipe, so a picture can be drawn again after the task that
made its parent is gone. Drawn pictures are kept, encoded, in a small LRU.

Everything here but the recipes is CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import collections
import io
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from aitre.simulator.mj_text import fit_area
from aitre.simulator.png import Canvas, draw, open_image

UPLOAD_SIDE = 512  # uploads are kept at most this big (longest side)
VARY = {"vary_subtle": 0.2, "vary": 0.35, "vary_strong": 0.55}  # share of the new picture
PANS = ("pan_left", "pan_right", "pan_up", "pan_down")


@dataclass(frozen=True, slots=True, eq=False)
class Grid:
    """Four tiles of `width` x `height` in a 2x2 grid. `op` says how each tile is made: from the
    prompt (`imagine`, with `inputs` as reference images), as a mix of `inputs` (`blend`), or
    from `parent` (`vary*`, `zoom` by `amount`, `pan_*`, `region` repainting under the mask in
    `inputs[0]`). The same recipe draws the same tiles; `seed` tells a reroll apart."""

    key: str
    prompt: str
    width: int
    height: int
    op: str = "imagine"
    parent: Picture | None = None
    amount: float = 0.0
    inputs: tuple[bytes, ...] = ()
    seed: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Tile:
    key: str
    grid: Grid
    index: int  # 1..4, left to right, top to bottom


@dataclass(frozen=True, slots=True, eq=False)
class Scaled:
    key: str
    parent: Picture
    factor: int


@dataclass(frozen=True, slots=True, eq=False)
class Upload:
    key: str
    data: bytes  # PNG, at most UPLOAD_SIDE


@dataclass(frozen=True, slots=True, eq=False)
class Swap:
    key: str
    source: bytes  # the face
    target: bytes


Picture = Grid | Tile | Scaled | Upload | Swap


def size_of(pic: Picture) -> tuple[int, int]:
    """The pixel size of a picture, without drawing it."""
    if isinstance(pic, Grid):
        return pic.width * 2, pic.height * 2
    if isinstance(pic, Tile):
        return pic.grid.width, pic.grid.height
    if isinstance(pic, Scaled):
        w, h = size_of(pic.parent)
        return w * pic.factor, h * pic.factor
    with Image.open(io.BytesIO(pic.data if isinstance(pic, Upload) else pic.target)) as img:
        return img.size


def derived_tile(parent: Picture, op: str) -> tuple[int, int]:
    """Tile size of a grid made from `parent`: its aspect (a pan widens or heightens it by half),
    about the area of an imagine tile."""
    w, h = size_of(parent)
    if op in ("pan_left", "pan_right"):
        w = w * 3 // 2
    elif op in ("pan_up", "pan_down"):
        h = h * 3 // 2
    return fit_area(w, h)


def owned_bytes(pic: Picture) -> int:
    """Bytes a recipe itself holds (uploads), to bound the memory of the task book."""
    if isinstance(pic, Grid):
        return sum(len(b) for b in pic.inputs)
    if isinstance(pic, Upload):
        return len(pic.data)
    if isinstance(pic, Swap):
        return len(pic.source) + len(pic.target)
    return 0


def read_upload(data: bytes) -> tuple[bytes, tuple[int, int, int]]:
    """An uploaded image as the PNG we keep (at most UPLOAD_SIDE) and its mean colour.
    Raises png.BadImage."""
    img = open_image(data).convert("RGB")
    img.thumbnail((UPLOAD_SIDE, UPLOAD_SIDE))
    mean = np.asarray(img, dtype=np.float32).reshape(-1, 3).mean(axis=0)
    r, g, b = (int(v) for v in mean)
    return encode(img), (r, g, b)


_COLOURS = {
    "red": (200, 40, 40),
    "orange": (230, 130, 30),
    "yellow": (230, 210, 50),
    "green": (50, 160, 60),
    "teal": (40, 150, 150),
    "blue": (40, 70, 200),
    "purple": (130, 50, 170),
    "pink": (230, 130, 180),
    "brown": (120, 80, 40),
    "grey": (128, 128, 128),
    "black": (15, 15, 15),
    "white": (240, 240, 240),
}


def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(_COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(_COLOURS[name], rgb, strict=True)))


def encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    # MJ's results are opaque; a fast zlib level keeps a 1024x1024 grid well under 100 ms.
    img.convert("RGB").save(buf, "PNG", compress_level=3)
    return buf.getvalue()


@dataclass(slots=True)
class PngCache:
    """Drawn pictures by recipe key, encoded: the newest `max_items`, at most `max_bytes`."""

    max_items: int = 128
    max_bytes: int = 64 * 1024 * 1024
    _items: collections.OrderedDict[str, bytes] = field(default_factory=collections.OrderedDict)
    _size: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._size += len(data) - (len(old) if old else 0)
            self._items[key] = data
            while self._items and (len(self._items) > self.max_items or self._size > self.max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


@dataclass(slots=True)
class Renderer:
    cache: PngCache = field(default_factory=PngCache)

    def png(self, pic: Picture) -> bytes:
        data = self.cache.get(pic.key)
        if data is None:
            data = encode(self._draw(pic))
            self.cache.put(pic.key, data)
        return data

    def preview(self, pic: Picture, progress: int) -> bytes:
        """What Discord shows while a job runs: the picture small and blurred, less so as it
        progresses."""
        img = self.image(pic)
        small = img.reduce(4)
        return encode(small.filter(ImageFilter.GaussianBlur(max(1, (100 - progress) // 10))))

    def image(self, pic: Picture) -> Image.Image:
        data = self.cache.get(pic.key)
        if data is not None:
            with Image.open(io.BytesIO(data)) as stored:
                return stored.convert("RGBA")
        img = self._draw(pic)
        self.cache.put(pic.key, encode(img))
        return img

    def _draw(self, pic: Picture) -> Image.Image:
        if isinstance(pic, Grid):
            return self._grid(pic)
        if isinstance(pic, Tile):
            w, h = pic.grid.width, pic.grid.height
            x, y = (pic.index - 1) % 2 * w, (pic.index - 1) // 2 * h
            return self.image(pic.grid).crop((x, y, x + w, y + h))
        if isinstance(pic, Scaled):
            parent = self.image(pic.parent)
            size = (parent.width * pic.factor, parent.height * pic.factor)
            return parent.resize(size, Image.Resampling.LANCZOS)
        if isinstance(pic, Upload):
            return open_image(pic.data)
        return _swap(open_image(pic.source), open_image(pic.target))

    def _grid(self, grid: Grid) -> Image.Image:
        base = self.image(grid.parent) if grid.parent is not None else None
        inputs = [open_image(data) for data in grid.inputs]
        out = Image.new("RGBA", (grid.width * 2, grid.height * 2))
        for i in range(4):
            out.paste(_tile(grid, i, base, inputs), (i % 2 * grid.width, i // 2 * grid.height))
        return out


def _tile(grid: Grid, i: int, base: Image.Image | None, inputs: list[Image.Image]) -> Image.Image:
    size = (grid.width, grid.height)
    if grid.op == "blend":
        return _mix(inputs, i, size)
    canvas = Canvas(grid.prompt, grid.width, grid.height, seed=f"mj\x00{grid.op}\x00{grid.seed}\x00{i}")
    if grid.op == "imagine" or base is None:
        return draw(canvas, extras=inputs)
    fresh = draw(canvas)
    if grid.op in VARY:
        return Image.blend(ImageOps.fit(base, size), fresh, VARY[grid.op])
    if grid.op == "zoom":
        small = ImageOps.contain(base, (round(grid.width / grid.amount), round(grid.height / grid.amount)))
        fresh.paste(small, ((grid.width - small.width) // 2, (grid.height - small.height) // 2))
        return fresh
    if grid.op in PANS:
        return _pan(fresh, base, grid.op)
    # region: MJ's mask is white where to repaint, black where to keep.
    mask = ImageOps.fit(inputs[0].convert("L"), size) if inputs else Image.new("L", size, 0)
    return Image.composite(fresh, ImageOps.fit(base, size), mask)


def _pan(fresh: Image.Image, base: Image.Image, op: str) -> Image.Image:
    """The old picture kept on the side away from the pan, new content where the view moved."""
    w, h = fresh.size
    horizontal = op in ("pan_left", "pan_right")
    old = ImageOps.contain(base, (w * 2 // 3, h) if horizontal else (w, h * 2 // 3))
    x = {"pan_left": w - old.width, "pan_right": 0}.get(op, (w - old.width) // 2)
    y = {"pan_up": h - old.height, "pan_down": 0}.get(op, (h - old.height) // 2)
    fresh.paste(old, (x, y))
    return fresh


def _mix(inputs: list[Image.Image], i: int, size: tuple[int, int]) -> Image.Image:
    """A weighted mean of the inputs; each tile favours a different one."""
    arrays = [np.asarray(ImageOps.fit(img, size).convert("RGB"), dtype=np.float32) for img in inputs]
    weights = [2.0 if j == i % len(arrays) else 1.0 for j in range(len(arrays))]
    mixed = sum(w * a for w, a in zip(weights, arrays, strict=True)) / sum(weights)
    return Image.fromarray(np.asarray(mixed, dtype=np.uint8)).convert("RGBA")


def _swap(face: Image.Image, target: Image.Image) -> Image.Image:
    """The source image, cut to an oval, over the middle of the target."""
    w, h = target.width // 2, target.height // 2
    oval = Image.new("L", (w, h), 0)
    ImageDraw.Draw(oval).ellipse((0, 0, w - 1, h - 1), fill=255)
    out = target.copy()
    out.paste(ImageOps.fit(face, (w, h)), (w // 2, h // 2), oval)
    return out
