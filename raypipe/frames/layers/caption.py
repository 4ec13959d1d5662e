"""A segment's caption as a layer bound to its segment: laid out at its size and the smaller
ones it may shrink to, and placed by its own rule (raypipe.frames.captions)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raypipe.errors import CaptionError, JobError
from raypipe.frames.captions import Caption
from raypipe.frames.layers.fixed import Still


@dataclass(frozen=True)
class CaptionLayer:
    """A caption: auto keeps clear of the faces, at the size and column that fit, and covers
    as little of the subject as it can; a given position is kept."""

    caption: Caption
    follows_subject = True  # auto looks for room; a given position still shrinks to clear a face
    sources = ()

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return self.caption.shapes

    def predraw(self, variant: int) -> None:
        """Draws the bitmap it is placed with, on the driver: it travels with the plan."""
        self.caption.png(variant)

    def renamed(self, name) -> CaptionLayer:
        return self

    def place(self, layer, subjects, faces, out_w: int, out_h: int, segment: int) -> tuple[int, tuple[int, int]]:
        try:
            return self.caption.place(subjects, out_w, out_h, faces)
        except CaptionError as e:
            raise JobError(layer.where, str(e)) from None

    def bitmap(self, variant: int, counter=None) -> np.ndarray:
        return self.caption.bitmap(variant)

    def reel(self, layer, variant: int, frames: range, counter=None) -> Still:
        return Still(self.bitmap(variant))
