"""A box layer: a filled rectangle, optionally rounded, for bars, panels and lower thirds."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageColor

from raypipe.errors import JobError
from raypipe.frames.layers.fixed import Fixed, within
from raypipe.frames.layers.shapes import rounded


@dataclass(frozen=True)
class BoxLayer(Fixed):
    """A rectangle of one colour, `width` x `height` of the frame, corners of `radius`."""

    color: tuple[int, int, int]
    shape: tuple[int, int]
    radius: float  # pixels

    keys = ("color", "width", "height", "radius")

    @classmethod
    def make(cls, cfg, where: str, out_w: int, out_h: int, read) -> BoxLayer:
        w = round(within(cfg, "width", where, 0, 1, 1.0) * out_w)
        h = round(within(cfg, "height", where, 0, 1, 0.12) * out_h)
        radius = 0.0 if cfg.radius is None else float(cfg.radius)
        if not 0 <= radius <= 0.5:
            raise JobError(f"{where}.radius", f"must be in 0..0.5 of the box's shorter side (got {cfg.radius})")
        try:
            color = ImageColor.getrgb(cfg.color or "black")[:3]
        except ValueError:
            raise JobError(f"{where}.color", f"unknown colour {cfg.color!r} (a name, or #rrggbb)") from None
        return cls(color, (max(h, 1), max(w, 1)), radius * min(h, w))

    def bitmap(self, variant: int, counter=None) -> np.ndarray:
        h, w = self.shape
        alpha = np.round(rounded(h, w, self.radius) * 255).astype(np.uint8)
        return np.dstack([np.full((h, w, 3), self.color, np.uint8), alpha])
