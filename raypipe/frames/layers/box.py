"""A box layer: a filled rectangle, optionally rounded, for bars, panels and lower thirds; its
fill one colour or a gradient, either of which may be see-through."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageColor

from raypipe.errors import JobError, MediaError
from raypipe.frames.layers.fixed import Fixed, within
from raypipe.frames.layers.shapes import rounded
from raypipe.media.cards import Gradient, gradient


@dataclass(frozen=True)
class BoxLayer(Fixed):
    """A rectangle of `color`, one colour (#rrggbbaa: see-through) or a gradient (gradient: or
    radial:), `width` x `height` of the frame, corners of `radius`."""

    color: tuple[int, ...]
    shape: tuple[int, int]
    radius: float  # pixels
    fill: Gradient | None = None  # a gradient instead of `color`

    keys = ("color", "width", "height", "radius")

    @classmethod
    def make(cls, cfg, where: str, out_w: int, out_h: int, read) -> BoxLayer:
        w = round(within(cfg, "width", where, 0, 1, 1.0) * out_w)
        h = round(within(cfg, "height", where, 0, 1, 0.12) * out_h)
        radius = 0.0 if cfg.radius is None else float(cfg.radius)
        if not 0 <= radius <= 0.5:
            raise JobError(f"{where}.radius", f"must be in 0..0.5 of the box's shorter side (got {cfg.radius})")
        text = cfg.color or "black"
        fill = None
        try:
            if text.startswith(("gradient:", "radial:")):
                color, fill = (0, 0, 0), gradient(text)
            else:
                color = ImageColor.getcolor(text, "RGBA")
        except MediaError as e:
            raise JobError(f"{where}.color", str(e)) from None
        except ValueError:
            raise JobError(f"{where}.color", f"unknown colour {cfg.color!r} (a name, #rrggbb or #rrggbbaa)") from None
        return cls(color, (max(h, 1), max(w, 1)), radius * min(h, w), fill)

    def bitmap(self, variant: int, counter=None) -> np.ndarray:
        h, w = self.shape
        cover = rounded(h, w, self.radius)
        if self.fill is not None:
            rgba = self.fill.rgba(w, h)
            rgba[:, :, 3] = np.round(rgba[:, :, 3] * cover).astype(np.uint8)
            return rgba
        alpha = np.round(cover * (self.color[3] if len(self.color) == 4 else 255)).astype(np.uint8)
        return np.dstack([np.full((h, w, 3), self.color[:3], np.uint8), alpha])
