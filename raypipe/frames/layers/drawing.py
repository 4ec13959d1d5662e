"""A layer as one task draws it: what it shows (a bitmap drawn or read once per task, or a
clip's frames decoded once, in order), over each frame it is on."""
from __future__ import annotations

import cv2
import numpy as np

from raypipe.frames.captions import paint, split
from raypipe.frames.layers.layer import Layer
from raypipe.frames.layers.motion import Box


class Drawing:
    def __init__(self, layer: Layer, variant: int, at: tuple[int, int], out_w: int, out_h: int, frames: range,
                 counter=None):
        """`frames`: the task's global frames, which it is asked for in order."""
        self.layer = layer
        self.reel = layer.kind.reel(layer, variant, frames, counter)
        h, w = self.reel.shape
        self.box = Box(at[0], at[1], w, h, out_w, out_h)

    def paint(self, frame: np.ndarray, k: int) -> None:
        """Draws the layer into global frame k (the caller's own copy), as its pose there says."""
        if not self.layer.on(k):
            return
        pose = self.layer.pose(k, self.box)
        rgb, alpha = self.reel.at(k)
        x, y = float(self.box.x), float(self.box.y)
        if pose.reveal < 1 or pose.scale != 1:
            rgba = np.dstack([rgb, np.round(alpha * 255).astype(np.uint8)])
            if pose.reveal < 1:
                rgba = rgba[:, :round(self.box.w * pose.reveal)]
            if pose.scale != 1:
                w, h = round(self.box.w * pose.scale), round(self.box.h * pose.scale)
                if w < 1 or h < 1:
                    return
                rgba = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_AREA)
                x, y = x + (self.box.w - w) / 2, y + (self.box.h - h) / 2
            if rgba.shape[1] == 0:
                return
            rgb, alpha = split(rgba)
        paint(frame, rgb, alpha, (round(x + pose.dx), round(y + pose.dy)), pose.opacity)
