"""What the text, image, box and video layers share: one bitmap (a video: one frame at a time)
of a size known when the job is planned, put at its anchor, or for `auto` at the first anchor
clear of the subject."""
from __future__ import annotations

import numpy as np

from raypipe.errors import JobError
from raypipe.frames.captions import split
from raypipe.frames.layers.anchors import AUTO_ORDER, origin


def _area(rect: tuple[float, float, float, float], boxes) -> float:
    """How much of `boxes` the rectangle covers, summed."""
    return sum(max(0.0, min(rect[2], b[2]) - max(rect[0], b[0])) * max(0.0, min(rect[3], b[3]) - max(rect[1], b[1]))
               for b in boxes)


def overlaps(rect: tuple[float, float, float, float], boxes) -> bool:
    return _area(rect, boxes) > 0


def within(cfg, key: str, where: str, lo: float, hi: float, default: float | None = None) -> float:
    """cfg[key] (or `default` where it is null), checked to lie in (lo, hi]."""
    value = cfg[key] if cfg[key] is not None else default
    if not lo < value <= hi:
        raise JobError(f"{where}.{key}", f"must be in ({lo:g}, {hi:g}] (got {value})")
    return float(value)


class Still:
    """A layer's one bitmap over a task's frames: drawn or read once, split once (most frames
    draw it whole). `at(k)` is what global frame k shows: its colours and its alpha, 0..1."""

    def __init__(self, rgba: np.ndarray):
        self.shape = rgba.shape[:2]
        self.parts = split(rgba)

    def at(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.parts


class Fixed:
    """A layer kind of one bitmap of `shape` (height, width): the subclass is a frozen
    dataclass with that field, and a `bitmap(variant, counter)` or a `reel` of its own."""

    shape: tuple[int, int]
    follows_subject = False  # put at its position unless it keeps clear
    sources: tuple[str, ...] = ()  # the files it reads (an image's, a video's)

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return (self.shape,)

    def predraw(self, variant: int) -> None:
        """Nothing to draw on the driver once placed: it was drawn when planned, or is read
        by each task."""

    def reel(self, layer, variant: int, frames: range, counter=None) -> Still:
        """What it shows over one task's global `frames`: its one bitmap."""
        return Still(self.bitmap(variant, counter))

    def renamed(self, name) -> Fixed:
        """The same, its file (if any) named `name(uri)`: by content in a key, or where it was staged."""
        return self

    def place(self, layer, subjects, faces, out_w: int, out_h: int, segment: int) -> tuple[int, tuple[int, int]]:
        """Its bitmap (the one) and origin over `segment`, from the subject's boxes and the faces
        (screen boxes over the segment's frames it is on): at its position; with `avoid:
        subject`, only where it is clear of both; with `position: auto`, at the first anchor
        clear of the faces (and with avoid, of the subject) that covers least of the subject.
        Where there is none, a JobError naming the layer."""
        if not layer.keeps_clear:
            return 0, origin(layer.position, self.shape, out_w, out_h, layer.margin, layer.offset)
        h, w = self.shape
        names = AUTO_ORDER if layer.position == "auto" else (layer.position,)
        rects = {n: (x, y, x + w, y + h) for n in names
                 for x, y in (origin(n, self.shape, out_w, out_h, layer.margin, layer.offset),)}
        clear = [n for n in names if not overlaps(rects[n], [*faces, *(subjects if layer.avoid else ())])]
        if clear:
            best = min(clear, key=lambda n: (round(_area(rects[n], subjects)), names.index(n)))
            return 0, rects[best][:2]
        what = "the subject and the faces" if layer.avoid else "the faces"
        where = "at any position" if layer.position == "auto" else f"at position {layer.position}"
        raise JobError(layer.where, f"cannot keep clear of {what} of segment {segment} {where}; {_remedy(layer)}")


def _remedy(layer) -> str:
    """What would let a layer that cannot keep clear be drawn: only what applies to it."""
    if layer.position != "auto":  # with avoid: only it keeps a given position clear
        return "make it smaller, choose another position, or drop avoid"
    if layer.avoid:
        return "make it smaller, or drop avoid (auto then keeps clear of the faces alone)"
    return "make it smaller, or give it a position (it is drawn there, with a warning where it covers a face)"
