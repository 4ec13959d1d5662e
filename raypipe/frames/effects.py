"""Frame math: pure functions of (source frame, subject, progress, output size) -> RGB frame.

A camera is a `View` — a rectangle in continuous source coordinates with the output's
aspect — and every effect is a camera path plus an optional look that uses the subject's
mask. Sampling goes through a mip pyramid with trilinear blending, so slow zooms neither
alias nor shimmer. A view may reach past the source (reframing a subject too wide for the
output's aspect); what lies outside is filled with a blurred, dimmed copy of the source.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import cv2
import numpy as np

from raypipe.detection.detections import Subject
from raypipe.errors import EffectError


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
        return _clamp_view(*self.focus(h), w, h, self.src_w, self.src_h)

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
        return _clamp_view(*self.focus(h), w, h, self.src_w, self.src_h)

    def fit(self, margin: float) -> View:
        """The cover view when the subject (plus margin) fits in it; otherwise the smallest
        view that holds the subject, reaching past the source where it must."""
        x0, y0, x1, y1 = self.box if self.key is None else (
            min(self.box[0], self.key[0]), min(self.box[1], self.key[1]),
            max(self.box[2], self.key[2]), max(self.box[3], self.key[3]))
        bw, bh = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
        cover = self.cover()
        if bw <= cover.w and bh <= cover.h:
            return _clamp_view((x0 + x1) / 2, (y0 + y1) / 2, cover.w, cover.h, self.src_w, self.src_h)
        w = max(bw, bh * self.aspect)
        return _clamp_view((x0 + x1) / 2, (y0 + y1) / 2, w, w / self.aspect, self.src_w, self.src_h)

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
        return _clamp_view(cx, cy, w, w / self.aspect, self.src_w, self.src_h)


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


# ---- parameters -----------------------------------------------------------------------


def _check(ok: bool, name: str, want: str, got) -> None:
    if not ok:
        raise EffectError(f"{name}: must be {want} (got {got!r})")


def _check_easing(easing: str) -> None:
    _check(easing in EASINGS, "easing", " or ".join(EASINGS), easing)


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
        _check_easing(self.easing)


@dataclass(frozen=True)
class PunchInParams:
    at: float | None = None  # seconds into the shot; null: 40% of the way through
    length: float = 0.3  # seconds the zoom takes
    zoom: float = 1.8

    def __post_init__(self):
        _check(self.at is None or self.at >= 0, "at", ">= 0 seconds or null", self.at)
        _check(self.length > 0, "length", "> 0 seconds", self.length)
        _check(self.zoom >= 1.0, "zoom", ">= 1", self.zoom)


@dataclass(frozen=True)
class PanParams:
    start: str = "auto"  # the edge the camera starts from; auto: the one farther from the subject
    zoom: float = 1.3  # how much closer than the wide view, which leaves room to move
    easing: str = "ease_in_out"

    def __post_init__(self):
        _check(self.start in ("auto", "left", "right", "top", "bottom"), "start",
               "auto, left, right, top or bottom", self.start)
        _check(self.zoom >= 1.0, "zoom", ">= 1", self.zoom)
        _check_easing(self.easing)


@dataclass(frozen=True)
class ReframeParams:
    margin: float = 0.08  # room kept around the subject, as a fraction of its size
    fill: str = "blur"  # what shows where the view reaches past the source: blur or black
    fill_blur: float = 0.05  # fraction of the frame height
    fill_dim: float = 0.45  # how much darker the fill is than the source

    def __post_init__(self):
        _check(0 <= self.margin <= 1, "margin", "in 0..1", self.margin)
        _check(self.fill in ("blur", "black"), "fill", "blur or black", self.fill)
        _check(self.fill_blur > 0, "fill_blur", "> 0", self.fill_blur)
        _check(0 <= self.fill_dim <= 1, "fill_dim", "in 0..1", self.fill_dim)


@dataclass(frozen=True)
class FocusParams:
    mode: str = "blur"  # blur or desaturate what lies outside the subject
    blur: float = 0.02  # background blur sigma, as a fraction of the frame height
    feather: float = 0.012  # softness of the mask's edge, as a fraction of the frame height
    strength: float = 1.0  # at the start of the shot, 0..1
    strength_end: float | None = None  # at its end; null: no change
    easing: str = "ease_in_out"

    def __post_init__(self):
        _check(self.mode in ("blur", "desaturate"), "mode", "blur or desaturate", self.mode)
        _check(self.blur > 0, "blur", "> 0", self.blur)
        _check(self.feather >= 0, "feather", ">= 0", self.feather)
        for name in ("strength", "strength_end"):
            v = getattr(self, name)
            _check(v is None or 0 <= v <= 1, name, "in 0..1", v)
        _check_easing(self.easing)

    def strength_at(self, p: float) -> float:
        end = self.strength if self.strength_end is None else self.strength_end
        return self.strength + (end - self.strength) * ease(p, self.easing)


@dataclass(frozen=True)
class SpotlightParams:
    dim: float = 0.6  # how much darker everything but the subject gets
    vignette: float = 0.5  # extra darkening toward the frame's corners
    feather: float = 0.02

    def __post_init__(self):
        _check(0 <= self.dim <= 1, "dim", "in 0..1", self.dim)
        _check(0 <= self.vignette <= 1, "vignette", "in 0..1", self.vignette)
        _check(self.feather >= 0, "feather", ">= 0", self.feather)


# ---- cameras: (framing, params, progress, shot seconds) -> View --------------------------


def static_camera(framing: Framing, params, p: float, seconds: float) -> View:
    return framing.cover()


def ken_burns_camera(framing: Framing, params: KenBurnsParams, p: float, seconds: float = 1.0) -> View:
    wide, close = framing.cover(), framing.toward_subject(params.zoom)
    a, b = (wide, close) if params.direction == "in" else (close, wide)
    return framing.between(a, b, ease(p, params.easing))


def punch_in_camera(framing: Framing, params: PunchInParams, p: float, seconds: float) -> View:
    at = 0.4 * seconds if params.at is None else params.at
    e = ease((p * seconds - at) / params.length, "ease_in_out")
    return framing.between(framing.cover(), framing.toward_subject(params.zoom), e)


def pan_camera(framing: Framing, params: PanParams, p: float, seconds: float) -> View:
    end = framing.toward_subject(params.zoom)
    room_x, room_y = framing.src_w - end.w, framing.src_h - end.h
    start = params.start
    if start == "auto":
        if room_x >= room_y:
            start = "left" if end.cx > framing.src_w / 2 else "right"
        else:
            start = "top" if end.cy > framing.src_h / 2 else "bottom"
    cx = {"left": end.w / 2, "right": framing.src_w - end.w / 2}.get(start, end.cx)
    cy = {"top": end.h / 2, "bottom": framing.src_h - end.h / 2}.get(start, end.cy)
    # It starts as far toward that edge as keeps the faces whole: a pan never shows half a face.
    begin = _clamp_view(*framing.keep_key(cx, cy, end.w, end.h), end.w, end.h, framing.src_w, framing.src_h)
    return framing.between(begin, end, ease(p, params.easing))


def reframe_camera(framing: Framing, params: ReframeParams, p: float, seconds: float) -> View:
    return framing.fit(params.margin)


@dataclass(frozen=True)
class Effect:
    params: type
    camera: Callable[[Framing, object, float, float], View]
    look: str | None = None  # shading that uses the subject's mask: focus or spotlight
    # What a 1080p frame costs on one core (`bench effects`): each frame of a moving camera,
    # and the first frame of a source (pyramids, blurs), which a video pays on every frame.
    frame_ms: float = 0.0
    setup_ms: float = 0.0


EFFECTS: dict[str, Effect] = {
    "static": Effect(StaticParams, static_camera, frame_ms=0.0, setup_ms=38),
    "ken_burns": Effect(KenBurnsParams, ken_burns_camera, frame_ms=18.9, setup_ms=36),
    "punch_in": Effect(PunchInParams, punch_in_camera, frame_ms=6.0, setup_ms=36),
    "pan": Effect(PanParams, pan_camera, frame_ms=15.2, setup_ms=19),
    "reframe": Effect(ReframeParams, reframe_camera, frame_ms=9.9, setup_ms=85),
    "focus": Effect(FocusParams, static_camera, look="focus", frame_ms=10.8, setup_ms=34),
    "spotlight": Effect(SpotlightParams, static_camera, look="spotlight", frame_ms=7.9, setup_ms=61),
}


def make_params(effect: str, params: dict, registry: dict | None = None, what: str = "effect"):
    """An effect's (or transition's) frozen params from a job's mapping; errors name the parameter."""
    registry = EFFECTS if registry is None else registry
    if effect not in registry:
        raise EffectError(f"unknown {what} {effect!r} (known: {', '.join(registry)})", name_unknown=True)
    cls = registry[effect].params
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise EffectError(f"unknown parameter {unknown[0]!r} for {what} {effect} (known: {known})", unknown[0])
    try:
        return cls(**params)
    except TypeError as e:
        raise EffectError(str(e)) from None


# ---- shots ----------------------------------------------------------------------------


class _Cached:
    """One derived value per input array; keeps the input alive, so its id stays unique."""

    def __init__(self, make):
        self.make, self.key, self.value = make, None, None

    def __call__(self, arr: np.ndarray, *more):
        if self.key is not arr:
            self.key, self.value = arr, self.make(arr, *more)
        return self.value


class Shot:
    """One source under one effect: `frame(image, subject, p)` renders progress p in [0, 1].

    Stills pass the same image and mask every frame, so pyramids and blurs are built once
    per shot; a video passes a new frame each time and they are rebuilt for it.
    """

    def __init__(self, effect: str, params, out_w: int, out_h: int, seconds: float = 1.0):
        self.effect, self.params = EFFECTS[effect], params
        self.out_w, self.out_h, self.seconds = out_w, out_h, seconds
        self.sharp = _Cached(Pyramid)
        self.blurred = _Cached(lambda img: self._soft_pyramid(img, params.blur))
        self.fill = _Cached(self._fill_pyramid)
        self.alpha = _Cached(lambda mask, size: self._soft_pyramid(mask, params.feather, size))
        self._samples: dict[str, tuple] = {}

    def _view_h(self, img: np.ndarray) -> float:
        """Source pixels per frame height in the wide view: blur sizes are relative to it."""
        h, w = img.shape[:2]
        return min(h, w * self.out_h / self.out_w)

    def _soft_pyramid(self, img: np.ndarray, sigma: float, base: tuple[int, int] | None = None) -> Pyramid:
        """`img` blurred by sigma (a fraction of the frame height), sampled in the coordinates
        of `base` (default: its own size; a mask may be smaller than its source)."""
        h, w = img.shape[:2]
        return Pyramid(soft(img, sigma * self._view_h(img)) if sigma > 0 else img, base=base or (w, h))

    def _fill_pyramid(self, img: np.ndarray) -> Pyramid:
        p = self.params if isinstance(self.params, ReframeParams) else ReframeParams()
        h, w = img.shape[:2]
        if p.fill == "black":
            return Pyramid(np.zeros((16, 16, 3), np.uint8), base=(w, h))
        fill = soft(img, p.fill_blur * self._view_h(img))
        return Pyramid(cv2.convertScaleAbs(fill, alpha=1.0 - p.fill_dim), base=(w, h))

    def _camera(self, size: tuple[int, int], box, p: float, zoom: float = 1.0, key=None) -> tuple[Framing, View]:
        framing = Framing(size[0], size[1], self.out_w / self.out_h, box, key)
        view = self.effect.camera(framing, self.params, p, self.seconds)
        return framing, (view if zoom == 1.0 else framing.zoomed(view, zoom))

    def _to_screen(self, view: View, x: float, y: float) -> tuple[float, float]:
        return ((x - view.cx + view.w / 2) * self.out_w / view.w, (y - view.cy + view.h / 2) * self.out_h / view.h)

    def screen_box(self, size: tuple[int, int], box, p: float, region=None, key=None
                   ) -> tuple[float, float, float, float]:
        """Where `region` (default: the subject's box itself) is in output pixels at progress
        p, with the camera framing the subject's `box` (and faces `key`); without rendering."""
        _, view = self._camera(size, box, p, key=key)
        x0, y0, x1, y1 = box if region is None else region
        return (*self._to_screen(view, x0, y0), *self._to_screen(view, x1, y1))

    def _sample(self, layer: str, pyramid: Pyramid, key, view: View) -> np.ndarray:
        """A layer sampled at a view, reused while the view and the layer's input stay the
        same: an animated look on a still camera re-blends, it does not re-warp."""
        last = self._samples.get(layer)
        if last is not None and last[0] is key and last[1] == view:
            return last[2]
        out = pyramid.sample(view, self.out_w, self.out_h)
        self._samples[layer] = (key, view, out)
        return out

    def frame(self, image: np.ndarray, subject: Subject, p: float, zoom: float = 1.0) -> np.ndarray:
        h, w = image.shape[:2]
        framing, view = self._camera((w, h), subject.box, p, zoom, subject.key)
        look = self.effect.look
        out = self._sample("sharp", self.sharp(image), image, view)
        if look == "focus":
            out = self._focus(out, image, subject, view, self.params.strength_at(p))
        elif look == "spotlight":
            out = self._spotlight(out, subject, view)
        cov = coverage(view, w, h, self.out_w, self.out_h)
        if cov is not None:
            out = composite(out, self._sample("fill", self.fill(image), image, framing.cover()), cov)
        return out

    def _mask(self, subject: Subject, view: View) -> np.ndarray:
        return self._sample("alpha", self.alpha(subject.mask, subject.source_size), subject.mask, view)

    def _focus(self, sharp: np.ndarray, image, subject, view, strength: float) -> np.ndarray:
        if strength <= 0:
            return sharp
        if self.params.mode == "blur":
            back = self._sample("blurred", self.blurred(image), image, view)
        else:
            back = cv2.cvtColor(cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        if strength < 1:
            back = cv2.addWeighted(sharp, 1.0 - strength, back, strength, 0.0)
        return composite(sharp, back, self._mask(subject, view))

    def _spotlight(self, sharp: np.ndarray, subject: Subject, view: View) -> np.ndarray:
        # Distance from the subject's centre on screen, relative to the frame's half diagonal.
        x0, y0, x1, y1 = subject.box
        cx, cy = self._to_screen(view, (x0 + x1) / 2, (y0 + y1) / 2)
        half_diag = math.hypot(self.out_w, self.out_h) / 2
        dx = ((np.arange(self.out_w, dtype=np.float32) + 0.5 - cx) / half_diag) ** 2
        dy = ((np.arange(self.out_h, dtype=np.float32) + 0.5 - cy) / half_diag) ** 2
        r2 = np.minimum(dy[:, None] + dx[None, :], 1.0)
        shade = (1.0 - self.params.dim) * (1.0 - self.params.vignette * r2)
        a = self._mask(subject, view).astype(np.float32) * (1.0 / 255.0)
        gain = cv2.merge([np.round((a + (1.0 - a) * shade) * 255.0).astype(np.uint8)] * 3)
        return cv2.multiply(sharp, gain, scale=1.0 / 255.0)


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


# ---- transitions: (outgoing(zoom), incoming(zoom), alpha, params) -> frame ------------------
# Each side is a callable that renders that shot's frame at a given extra zoom, so that a
# transition renders only the sides it shows.

Side = Callable[[float], np.ndarray]


@dataclass(frozen=True)
class NoParams:
    pass


@dataclass(frozen=True)
class WipeParams:
    direction: str = "left"  # the way the edge travels; the next shot comes in behind it
    softness: float = 0.03  # width of the edge, as a fraction of the frame

    def __post_init__(self):
        _check(self.direction in ("left", "right", "up", "down"), "direction", "left, right, up or down",
               self.direction)
        _check(0 <= self.softness <= 0.5, "softness", "in 0..0.5", self.softness)


@dataclass(frozen=True)
class ZoomThroughParams:
    zoom: float = 3.0  # how far the camera flies into the outgoing subject (and out of the next)

    def __post_init__(self):
        _check(self.zoom > 1, "zoom", "> 1", self.zoom)


def crossfade(a: Side, b: Side, alpha: float, params=None) -> np.ndarray:
    return cv2.addWeighted(a(1.0), 1.0 - alpha, b(1.0), alpha, 0.0)


def fade_black(a: Side, b: Side, alpha: float, params=None) -> np.ndarray:
    # Out to black over the first half, in from black over the second.
    if alpha < 0.5:
        return cv2.convertScaleAbs(a(1.0), alpha=1.0 - 2.0 * alpha)
    return cv2.convertScaleAbs(b(1.0), alpha=2.0 * alpha - 1.0)


def wipe(a: Side, b: Side, alpha: float, params: WipeParams) -> np.ndarray:
    first = a(1.0)
    h, w = first.shape[:2]
    horizontal = params.direction in ("left", "right")
    n = w if horizontal else h
    soft_px = max(params.softness * n, 1.0)
    # The edge travels from beyond one side to beyond the other, so both ends are clean.
    edge = -soft_px + alpha * (n + 2 * soft_px)
    pos = np.arange(n, dtype=np.float32) + 0.5
    if params.direction in ("left", "up"):
        pos = n - pos
    ramp = np.clip((edge - pos) / soft_px + 0.5, 0.0, 1.0)  # 1 where the next shot shows
    weight = np.broadcast_to(ramp[None, :] if horizontal else ramp[:, None], (h, w))
    return composite(b(1.0), first, np.ascontiguousarray(weight, np.float32))


def zoom_through(a: Side, b: Side, alpha: float, params: ZoomThroughParams) -> np.ndarray:
    # Fly into the outgoing subject (accelerating), then out of the incoming one
    # (decelerating); the two meet, at the same extreme zoom, in a short dissolve.
    za = params.zoom ** ease(alpha / 0.6, "ease_in")
    zb = params.zoom ** (1.0 - ease((alpha - 0.4) / 0.6, "ease_out"))
    mix = ease((alpha - 0.4) / 0.2, "linear")
    if mix <= 0:
        return a(za)
    if mix >= 1:
        return b(zb)
    return cv2.addWeighted(a(za), 1.0 - mix, b(zb), mix, 0.0)


@dataclass(frozen=True)
class Transition:
    params: type
    blend: Callable[[Side, Side, float, object], np.ndarray] | None
    blend_ms: float = 0.0  # a 1080p frame's blending on one core, beyond rendering its sides


TRANSITIONS: dict[str, Transition] = {
    "cut": Transition(NoParams, None),
    "crossfade": Transition(NoParams, crossfade, blend_ms=2.0),
    "fade_black": Transition(NoParams, fade_black, blend_ms=1.0),
    "wipe": Transition(WipeParams, wipe, blend_ms=8.0),
    "zoom_through": Transition(ZoomThroughParams, zoom_through, blend_ms=2.0),
}
