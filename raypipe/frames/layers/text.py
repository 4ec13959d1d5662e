"""A text layer: drawn once, on the driver, when the job is planned (as captions are), so
worker nodes need no fonts; it wraps inside `width` of the frame."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from raypipe.errors import CaptionError, JobError
from raypipe.frames.captions import ALIGNS, CaptionStyle, block
from raypipe.frames.layers.fixed import Fixed, within


@dataclass(frozen=True)
class TextLayer(Fixed):
    """Text in a font, size and colour, with an optional outline and box, wrapped to a width."""

    png: bytes
    shape: tuple[int, int]

    keys = ("text", "font", "size", "color", "outline", "outline_color", "box", "box_color", "box_opacity", "align",
            "width")

    @classmethod
    def make(cls, cfg, where: str, out_w: int, out_h: int, read) -> TextLayer:
        within(cfg, "size", where, 0, 0.5)
        width = within(cfg, "width", where, 0, 1, 0.9)
        if cfg.align not in ALIGNS:
            raise JobError(f"{where}.align", f"must be one of {', '.join(ALIGNS)} (got {cfg.align!r})")
        if not 0 <= cfg.box_opacity <= 1 or cfg.outline < 0:
            key = "outline" if cfg.outline < 0 else "box_opacity"
            raise JobError(f"{where}.{key}", f"must be {'>= 0' if key == 'outline' else 'in 0..1'} (got {cfg[key]})")
        style = CaptionStyle(str(cfg.text), cfg.font, float(cfg.size), cfg.color or "white", float(cfg.outline),
                             cfg.outline_color, bool(cfg.box), cfg.box_color, float(cfg.box_opacity), "center", 0.0,
                             0.0, 0.0, cfg.align)
        try:
            rgba = block(style, out_w, out_h, round(width * out_w))
        except CaptionError as e:
            raise JobError(where, str(e)) from None
        if rgba.shape[0] > out_h:
            raise JobError(f"{where}.text", f"its {rgba.shape[0]} px of lines are taller than the {out_h} px frame; "
                                            "shorten it, or lower size or widen width")
        png = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))[1].tobytes()
        return cls(png, rgba.shape[:2])

    def bitmap(self, variant: int, counter=None) -> np.ndarray:
        bgra = cv2.imdecode(np.frombuffer(self.png, np.uint8), cv2.IMREAD_UNCHANGED)
        return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
