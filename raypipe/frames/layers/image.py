"""An image layer: any image the media layer reads, its alpha kept (a logo, an agent's photo
in a circle), fitted inside `width` x `height` of the frame. Its size is read when the job is
planned; its pixels once per task."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from raypipe.errors import JobError, MediaError
from raypipe.frames.layers.fixed import Fixed, within
from raypipe.frames.layers.shapes import rounded
from raypipe.media import load_rgba, normalize

MASKS = ("circle", "rounded")


@dataclass(frozen=True)
class ImageLayer(Fixed):
    """An image with its transparency, fitted inside a box of the frame, optionally masked:
    `circle` (its centred square, round) or `rounded` (corners of `radius`)."""

    source: str
    shape: tuple[int, int]
    mask: str | None
    radius: float  # pixels

    keys = ("source", "mask", "width", "height", "radius")

    @classmethod
    def make(cls, cfg, where: str, out_w: int, out_h: int, read) -> ImageLayer:
        if not cfg.source or not str(cfg.source).strip():
            raise JobError(f"{where}.source", "an image layer needs a source (a path, a URI or sample:NAME)")
        if cfg.mask not in (None, *MASKS):
            raise JobError(f"{where}.mask", f"must be one of {', '.join(MASKS)} or null (got {cfg.mask!r})")
        box_w = within(cfg, "width", where, 0, 1, 0.25) * out_w
        box_h = within(cfg, "height", where, 0, 1, 0.25) * out_h
        radius = 0.15 if cfg.radius is None else float(cfg.radius)
        if not 0 <= radius <= 0.5:
            raise JobError(f"{where}.radius", f"must be in 0..0.5 of the image's shorter side (got {cfg.radius})")
        uri = normalize(str(cfg.source).strip())
        try:
            iw, ih = read.size(uri)
        except MediaError as e:
            raise JobError(f"{where}.source", str(e)) from None
        if cfg.mask == "circle":
            iw = ih = min(iw, ih)
        scale = min(box_w / iw, box_h / ih)
        shape = (max(1, round(ih * scale)), max(1, round(iw * scale)))
        return cls(uri, shape, cfg.mask, radius * min(shape) if cfg.mask == "rounded" else min(shape) / 2)

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)

    def renamed(self, name) -> ImageLayer:
        return dataclasses.replace(self, source=name(self.source))

    def bitmap(self, variant: int, counter=None) -> np.ndarray:
        rgba = load_rgba(self.source, counter)
        if self.mask == "circle":
            h, w = rgba.shape[:2]
            side = min(h, w)
            rgba = rgba[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        h, w = self.shape
        # Resampled premultiplied, so that transparent pixels' colours do not bleed into the edges.
        a = rgba[:, :, 3:].astype(np.float32) / 255.0
        pre = np.dstack([rgba[:, :, :3].astype(np.float32) * a, a])
        shrink = w < rgba.shape[1]
        pre = cv2.resize(pre, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR).reshape(h, w, 4)
        alpha = pre[:, :, 3]
        if self.mask is not None:
            alpha = alpha * rounded(h, w, self.radius)
        rgb = pre[:, :, :3] / np.maximum(pre[:, :, 3:], 1e-6)
        return np.dstack([np.clip(np.round(rgb), 0, 255), np.round(alpha * 255)]).astype(np.uint8)
