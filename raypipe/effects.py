"""Frame math: pure functions of (source, subject, progress, output size) -> RGB frame.

A camera is a `View` — a rectangle in continuous source coordinates with the output's
aspect — and every effect is a camera path plus optional shading. Sampling goes through a
mip pyramid with trilinear blending, so slow zooms neither alias nor shimmer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable

import cv2
import numpy as np

from raypipe.detections import Subject


class EffectError(ValueError):
    pass


@dataclass(frozen=True)
class View:
    cx: float
    cy: float
    w: float
    h: float


def _clamp_view(cx: float, cy: float, w: float, h: float, src_w: int, src_h: int) -> View:
    cx = src_w / 2 if w >= src_w else min(max(cx, w / 2), src_w - w / 2)
    cy = src_h / 2 if h >= src_h else min(max(cy, h / 2), src_h - h / 2)
    return View(cx, cy, w, h)


@dataclass(frozen=True)
class Framing:
    """What every camera knows: source size, output aspect and the subject's box."""

    src_w: int
    src_h: int
    aspect: float
    box: tuple[float, float, float, float]

    def focus(self, view_h: float) -> tuple[float, float]:
        """Where a view of height view_h should centre: the subject's centre, or, for a
        subject taller than the view, its top part — heads and faces are at the top."""
        x0, y0, x1, y1 = self.box
        cy = (y0 + y1) / 2 if y1 - y0 <= view_h else y0 + view_h / 2
        return (x0 + x1) / 2, cy

    def cover(self) -> View:
        """The largest view of the output's aspect inside the source, as near the subject as fits."""
        w = min(self.src_w, self.src_h * self.aspect)
        h = w / self.aspect
        return _clamp_view(*self.focus(h), w, h, self.src_w, self.src_h)

    def toward_subject(self, zoom: float) -> View:
        """The wide view zoomed `zoom` times toward the subject's focus point."""
        w = self.cover().w / zoom
        h = w / self.aspect
        return _clamp_view(*self.focus(h), w, h, self.src_w, self.src_h)

    def between(self, a: View, b: View, e: float) -> View:
        # Zoom is interpolated in log space so its speed looks constant; the centre
        # follows the width so that the pan and the zoom arrive together.
        w = a.w * (b.w / a.w) ** e
        k = e if abs(b.w - a.w) < 1e-9 else (w - a.w) / (b.w - a.w)
        cx, cy = a.cx + (b.cx - a.cx) * k, a.cy + (b.cy - a.cy) * k
        return _clamp_view(cx, cy, w, w / self.aspect, self.src_w, self.src_h)


def ease(p: float, kind: str) -> float:
    p = min(max(p, 0.0), 1.0)
    if kind == "linear":
        return p
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


# ---- effects --------------------------------------------------------------------------


@dataclass(frozen=True)
class StaticParams:
    pass


@dataclass(frozen=True)
class KenBurnsParams:
    direction: str = "in"  # in: wide -> subject; out: subject -> wide
    zoom: float = 1.6  # the close framing is this much closer than the wide one
    easing: str = "ease_in_out"

    def __post_init__(self):
        _check(self.direction in ("in", "out"), "direction", "in or out", self.direction)
        _check(self.zoom >= 1.0, "zoom", ">= 1", self.zoom)
        _check(self.easing in ("linear", "ease_in_out"), "easing", "linear or ease_in_out", self.easing)


@dataclass(frozen=True)
class FocusParams:
    blur: float = 0.02  # background blur sigma, as a fraction of the frame height
    feather: float = 0.012  # softness of the mask's edge, as a fraction of the frame height

    def __post_init__(self):
        _check(self.blur > 0, "blur", "> 0", self.blur)
        _check(self.feather >= 0, "feather", ">= 0", self.feather)


def _check(ok: bool, name: str, want: str, got) -> None:
    if not ok:
        raise EffectError(f"{name}: must be {want} (got {got!r})")


def static_camera(framing: Framing, params: StaticParams, p: float) -> View:
    return framing.cover()


def ken_burns_camera(framing: Framing, params: KenBurnsParams, p: float) -> View:
    wide, close = framing.cover(), framing.toward_subject(params.zoom)
    a, b = (wide, close) if params.direction == "in" else (close, wide)
    return framing.between(a, b, ease(p, params.easing))


@dataclass(frozen=True)
class Effect:
    params: type
    camera: Callable[[Framing, object, float], View]
    blur_background: bool = False


EFFECTS: dict[str, Effect] = {
    "static": Effect(StaticParams, static_camera),
    "ken_burns": Effect(KenBurnsParams, ken_burns_camera),
    "focus": Effect(FocusParams, static_camera, blur_background=True),
}


def make_params(effect: str, params: dict):
    """The effect's frozen params from a job's mapping; errors name the parameter."""
    if effect not in EFFECTS:
        raise EffectError(f"unknown effect {effect!r} (known: {', '.join(EFFECTS)})")
    cls = EFFECTS[effect].params
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise EffectError(f"unknown parameter {unknown[0]!r} for effect {effect} (known: {known})")
    return cls(**params)


class Shot:
    """One source under one effect, ready to render any progress p in [0, 1]."""

    def __init__(self, image: np.ndarray, subject: Subject, effect: str, params, out_w: int, out_h: int):
        self.effect = EFFECTS[effect]
        self.params = params
        self.out_w, self.out_h = out_w, out_h
        h, w = image.shape[:2]
        self.framing = Framing(w, h, out_w / out_h, subject.box)
        self.sharp = Pyramid(image)
        if self.effect.blur_background:
            view_h = self.framing.cover().h  # source pixels per frame height
            self.blurred = Pyramid(soft(image, params.blur * view_h), base=(w, h))
            alpha = subject.mask
            if params.feather > 0:
                alpha = soft(alpha, params.feather * view_h)
            self.alpha = Pyramid(alpha, base=(w, h))
        self._last: tuple[View, np.ndarray] | None = None

    def frame(self, p: float) -> np.ndarray:
        view = self.effect.camera(self.framing, self.params, p)
        if self._last is not None and self._last[0] == view:
            return self._last[1]  # still cameras: one warp per segment, not per frame
        img = self.sharp.sample(view, self.out_w, self.out_h)
        if self.effect.blur_background:
            img = composite(img, self.blurred.sample(view, self.out_w, self.out_h),
                            self.alpha.sample(view, self.out_w, self.out_h))
        self._last = (view, img)
        return img


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
    """fg where alpha is 255, bg where 0, linear in between."""
    a = alpha.astype(np.float32) * (1.0 / 255.0)
    return cv2.blendLinear(fg, bg, a, 1.0 - a)


# ---- transitions ----------------------------------------------------------------------


def crossfade(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    return cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0)


TRANSITIONS: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None] = {
    "cut": None,
    "crossfade": crossfade,
}
