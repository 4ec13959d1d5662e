"""Where a layer sits: one of 9 anchors of the frame, inside its margin, moved by an offset."""
from __future__ import annotations

ANCHORS = ("top_left", "top", "top_right", "left", "center", "right", "bottom_left", "bottom", "bottom_right")
# `position: auto` looks at these in turn, the usual places for text first and the middle of the
# frame last: of those clear of the faces, it takes the one covering least of the subject (fixed.py).
AUTO_ORDER = ("bottom", "top", "bottom_left", "bottom_right", "top_left", "top_right", "left", "right", "center")


def origin(anchor: str, shape: tuple[int, int], out_w: int, out_h: int, margin: float,
           offset: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int]:
    """The top-left pixel of a (height, width) bitmap at `anchor`, `margin` (a fraction of the
    frame's height) from the edges it is anchored to, then moved by `offset` (fractions of the
    frame, x to the right and y up, as Shotstack's)."""
    h, w = shape
    m = round(margin * out_h)
    parts = anchor.split("_")
    x = m if "left" in parts else out_w - w - m if "right" in parts else (out_w - w) // 2
    y = m if "top" in parts else out_h - h - m if "bottom" in parts else (out_h - h) // 2
    return x + round(offset[0] * out_w), y - round(offset[1] * out_h)
