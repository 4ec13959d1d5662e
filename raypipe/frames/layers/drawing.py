"""A layer as one task draws it: its bitmap, drawn or read once per task, over each frame it is on."""
from __future__ import annotations

import cv2
import numpy as np

from raypipe.frames.captions import paint, split
from raypipe.frames.layers.layer import Layer
from raypipe.frames.layers.motion import Box


class Drawing:
    def __init__(self, layer: Layer, variant: int, at: tuple[int, int], out_w: int, out_h: int, counter=None):
        self.layer = layer
        self.rgba = layer.kind.bitmap(variant, counter)
        self.at_rest = split(self.rgba)  # split once: most frames draw it whole
        h, w = self.rgba.shape[:2]
        self.box = Box(at[0], at[1], w, h, out_w, out_h)

    def paint(self, frame: np.ndarray, k: int) -> None:
        """Draws the layer into global frame k (the caller's own copy), as its pose there says."""
        if not self.layer.on(k):
            return
        pose = self.layer.pose(k, self.box)
        rgba, x, y = self.rgba, float(self.box.x), float(self.box.y)
        if pose.reveal < 1:
            rgba = rgba[:, :round(self.box.w * pose.reveal)]
        if pose.scale != 1:
            w, h = round(self.box.w * pose.scale), round(self.box.h * pose.scale)
            if w < 1 or h < 1:
                return
            rgba = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_AREA)
            x, y = x + (self.box.w - w) / 2, y + (self.box.h - h) / 2
        if rgba.shape[1] > 0:
            rgb, alpha = self.at_rest if rgba is self.rgba else split(rgba)
            paint(frame, rgb, alpha, (round(x + pose.dx), round(y + pose.dy)), pose.opacity)
