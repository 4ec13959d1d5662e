"""Antialiased coverage masks for rounded corners and circles."""
from __future__ import annotations

import numpy as np


def rounded(h: int, w: int, radius: float) -> np.ndarray:
    """float32 (h, w), 1 inside a rectangle with corners of `radius` pixels (a circle where the
    rectangle is square and the radius half its side), 0 outside, each edge pixel by its
    coverage."""
    r = min(max(radius, 0.0), min(h, w) / 2)
    # Signed distance from each pixel's centre to the shape's edge, negative inside.
    qx = (np.abs(np.arange(w, dtype=np.float32) + 0.5 - w / 2) - (w / 2 - r))[None, :]
    qy = (np.abs(np.arange(h, dtype=np.float32) + 0.5 - h / 2) - (h / 2 - r))[:, None]
    dist = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r
    return np.clip(0.5 - dist, 0.0, 1.0)
