"""Cameras' geometry and sampling: pure functions of (source, subject's box, view, output size).

A camera is a `View` — a rectangle in continuous source coordinates with the output's
aspect. Sampling goes through a mip pyramid with trilinear blending, so slow zooms neither
alias nor shimmer. A view may reach past the source (reframing a subject too wide for the
output's aspect); `coverage` says how much of each output pixel the source covers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class View:
    cx: float
    cy: float
    w: float
    h: float


def clamp_view(cx: float, cy: float, w: float, h: float, src_w: int, src_h: int) -> View:
    cx = src_w / 2 if w >= src_w else min(max(cx, w / 2), src_w - w / 2)
    cy = src_h / 2 if h >= src_h else min(max(cy, h / 2), src_h - h / 2)
    return View(cx, cy, w, h)


# Room kept around the faces' box in a view, as a fraction of its size (the cascades' head
# boxes are estimates: a little more keeps the hair and the chin).
KEY_MARGIN = 0.08


@dataclass(frozen=True)
class Framing:
    """What every camera knows: source size, output aspect, the subject's box and, where faces
    were found, the box that holds them all (heads with headroom), which every view that can
    hold it keeps whole."""

    src_w: int
    src_h: int
    aspect: float
    box: tuple[float, float, float, float]
    key: tuple[float, float, float, float] | None = None

    def keep_key(self, cx: float, cy: float, w: float, h: float) -> tuple[float, float]:
        """The centre nearest (cx, cy) of a w x h view that holds the faces whole (or, when
        they do not fit, is centred on them, heads first)."""
        if self.key is None:
            return cx, cy
        kx0, ky0, kx1, ky1 = self.key
        mx, my = KEY_MARGIN * (kx1 - kx0), KEY_MARGIN * (ky1 - ky0)  # room around the heads, where it fits
        if kx1 - kx0 + 2 * mx <= w:
            kx0, kx1 = kx0 - mx, kx1 + mx
        if ky1 - ky0 + 2 * my <= h:
            ky0, ky1 = ky0 - my, ky1 + my
        cx = min(max(cx, kx1 - w / 2), kx0 + w / 2) if kx1 - kx0 <= w else (kx0 + kx1) / 2
        cy = min(max(cy, ky1 - h / 2), ky0 + h / 2) if ky1 - ky0 <= h else ky0 + h / 2
        return cx, cy

    def focus(self, view_h: float) -> tuple[float, float]:
        """Where a view of height view_h should centre: the subject's centre, or, for a
        subject taller than the view, its top part (heads and faces are at the top). With
        faces: a view too small for the whole subject aims at the faces, and any view holds
        them whole where they fit."""
        x0, y0, x1, y1 = self.box
        w = view_h * self.aspect
        if self.key is not None and (y1 - y0 > view_h or x1 - x0 > w):
            kx0, ky0, kx1, ky1 = self.key
            return self.keep_key((kx0 + kx1) / 2, (ky0 + ky1) / 2, w, view_h)
        cy = (y0 + y1) / 2 if y1 - y0 <= view_h else y0 + view_h / 2
        return self.keep_key((x0 + x1) / 2, cy, w, view_h)

    def cover(self) -> View:
        """The largest view of the output's aspect inside the source, as near the subject as fits."""
        w = min(self.src_w, self.src_h * self.aspect)
        h = w / self.aspect
        return clamp_view(*self.focus(h), w, h, self.src_w, self.src_h)

    def toward_subject(self, zoom: float) -> View:
        """The wide view zoomed `zoom` times toward the subject's focus point; with faces, no
        closer than keeps them whole (a punch-in stops at the face rather than cut it)."""
        cover = self.cover()
        if self.key is not None:
            kw = (self.key[2] - self.key[0]) * (1 + 2 * KEY_MARGIN)
            kh = (self.key[3] - self.key[1]) * (1 + 2 * KEY_MARGIN)
            zoom = min(zoom, max(1.0, min(cover.w / kw, cover.h / kh)))
        w = cover.w / zoom
        h = w / self.aspect
        return clamp_view(*self.focus(h), w, h, self.src_w, self.src_h)

    def fit(self, margin: float) -> View:
        """The cover view when the subject (plus margin) fits in it; otherwise the smallest
        view that holds the subject, reaching past the source where it must."""
        x0, y0, x1, y1 = self.box if self.key is None else (
            min(self.box[0], self.key[0]), min(self.box[1], self.key[1]),
            max(self.box[2], self.key[2]), max(self.box[3], self.key[3]))
        bw, bh = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
        cover = self.cover()
        if bw <= cover.w and bh <= cover.h:
            return clamp_view((x0 + x1) / 2, (y0 + y1) / 2, cover.w, cover.h, self.src_w, self.src_h)
        w = max(bw, bh * self.aspect)
        return clamp_view((x0 + x1) / 2, (y0 + y1) / 2, w, w / self.aspect, self.src_w, self.src_h)

    def zoomed(self, view: View, zoom: float) -> View:
        """`view` zoomed `zoom` times about the subject's focus point, which keeps its place
        on screen: the camera flies into the subject, not into the middle of the frame."""
        fx, fy = self.focus(view.h)
        fx = min(max(fx, view.cx - view.w / 2), view.cx + view.w / 2)
        fy = min(max(fy, view.cy - view.h / 2), view.cy + view.h / 2)
        return View(fx + (view.cx - fx) / zoom, fy + (view.cy - fy) / zoom, view.w / zoom, view.h / zoom)

    def between(self, a: View, b: View, e: float) -> View:
        # Zoom is interpolated in log space so its speed looks constant; the centre
        # follows the width so that the pan and the zoom arrive together.
        w = a.w * (b.w / a.w) ** e
        k = e if abs(b.w - a.w) < 1e-9 else (w - a.w) / (b.w - a.w)
        cx, cy = a.cx + (b.cx - a.cx) * k, a.cy + (b.cy - a.cy) * k
        return clamp_view(cx, cy, w, w / self.aspect, self.src_w, self.src_h)


EASINGS = ("linear", "ease_in_out", "ease_in", "ease_out")


def ease(p: float, kind: str = "ease_in_out") -> float:
    p = min(max(p, 0.0), 1.0)
    if kind == "linear":
        return p
    if kind == "ease_in":
        return p * p
    if kind == "ease_out":
        return 1.0 - (1.0 - p) ** 2
    return p * p * (3.0 - 2.0 * p)  # ease_in_out: zero velocity at both ends


# ---- sampling -------------------------------------------------------------------------


class Pyramid:
    """Mip levels of one image; each level is half the previous, made by 2x2 averaging.

    Views are in the coordinates of a `base` size (the source's); the image itself may be
    smaller than that, for layers so blurry that full resolution would be wasted.
    """

    def __init__(self, image: np.ndarray, base: tuple[int, int] | None = None, min_side: int = 8):
        self.base_w, self.base_h = base or (image.shape[1], image.shape[0])
        self.levels = [image]
        while min(self.levels[-1].shape[:2]) >= 2 * min_side:
            top = self.levels[-1]
            size = (max(1, top.shape[1] // 2), max(1, top.shape[0] // 2))
            self.levels.append(cv2.resize(top, size, interpolation=cv2.INTER_AREA))

    def sample(self, view: View, out_w: int, out_h: int) -> np.ndarray:
        # Level-of-detail: level pixels per output pixel, in octaves above the first level.
        lod = math.log2(view.w / out_w * self.levels[0].shape[1] / self.base_w)
        lod = min(max(0.0, lod), len(self.levels) - 1)
        lo = int(lod)
        frac = lod - lo
        img = self._warp(lo, view, out_w, out_h)
        if frac > 1e-3 and lo + 1 < len(self.levels):
            img = cv2.addWeighted(img, 1.0 - frac, self._warp(lo + 1, view, out_w, out_h), frac, 0.0)
        return img

    def _warp(self, k, view, out_w, out_h):
        level = self.levels[k]
        # Continuous coordinates: source pixel i spans [i, i+1). Output pixel u's centre
        # lies at x0 + (u + 0.5) * scale, which is index x / f - 0.5 on a level whose
        # pixels are f source pixels wide (per axis, as odd sizes round down).
        fx = self.base_w / level.shape[1]
        fy = self.base_h / level.shape[0]
        x0 = view.cx - view.w / 2
        y0 = view.cy - view.h / 2
        sx = view.w / out_w / fx
        sy = view.h / out_h / fy
        m = np.array([[sx, 0.0, x0 / fx + 0.5 * sx - 0.5], [0.0, sy, y0 / fy + 0.5 * sy - 0.5]])
        return cv2.warpAffine(
            level, m, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )


def coverage(view: View, src_w: int, src_h: int, out_w: int, out_h: int) -> np.ndarray | None:
    """Per output pixel, the fraction of its area that lies on the source (None: all of it).
    Exact box-filter coverage, so the source's edge moves smoothly, never a pixel at a time."""
    x0, y0 = view.cx - view.w / 2, view.cy - view.h / 2
    if x0 >= -1e-6 and y0 >= -1e-6 and x0 + view.w <= src_w + 1e-6 and y0 + view.h <= src_h + 1e-6:
        return None

    def axis(lo, size, n, limit):
        step = size / n
        left = lo + step * np.arange(n)
        return (np.clip(left + step, 0, limit) - np.clip(left, 0, limit)) / step

    cx, cy = axis(x0, view.w, out_w, src_w), axis(y0, view.h, out_h, src_h)
    return np.outer(cy, cx).astype(np.float32)


def soft(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur computed at the coarsest scale that still resolves sigma (>= 2 px
    there): a wide blur at full size costs O(sigma) per pixel and shows nothing more."""
    h, w = image.shape[:2]
    factor = 1
    while sigma / (2 * factor) >= 2.0 and min(h, w) // (2 * factor) >= 16:
        factor *= 2
    small = image if factor == 1 else cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), sigma / factor)


def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """fg where alpha is 255 (or 1.0 for float alpha), bg where 0, linear in between."""
    a = alpha.astype(np.float32) * (1.0 / 255.0) if alpha.dtype == np.uint8 else alpha
    return cv2.blendLinear(fg, bg, a, 1.0 - a)

