"""Effects, one class each: its parameters, its camera, its look and its cost, in one place.

Every effect is a camera path (a `View` per progress p) plus an optional look that uses the
subject's mask; a `Shot` renders one source under one effect, a pure function of (source
frame, subject, progress, output size) -> RGB frame. What lies outside the source, where a
view reaches past it, is filled with a blurred, dimmed copy of the source.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from raypipe.config import param
from raypipe.detection.detections import Subject
from raypipe.errors import EffectError
from raypipe.frames.params import NoParams, check, check_easing
from raypipe.frames.view import Framing, Pyramid, View, clamp_view, composite, coverage, ease, soft

# Filled by defining an effect (`class Pan(Effect, name="pan")`), in the order of definition.
EFFECTS: dict[str, Effect] = {}


class Effect:
    """An effect is a subclass that names itself, which adds it to EFFECTS; its docstring's first
    paragraph says what it does (`python -m raypipe effects` prints it)."""

    name: str
    params: type = NoParams  # a frozen dataclass of `param` fields, checked in __post_init__
    # What a 1080p frame costs on one core (`bench effects`): each frame of a moving camera,
    # and the first frame of a source (pyramids, blurs), which a video pays on every frame.
    frame_ms: float = 0.0
    setup_ms: float = 0.0

    def __init_subclass__(cls, name: str, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = name
        EFFECTS[name] = cls()

    def camera(self, framing: Framing, params, p: float, seconds: float) -> View:
        """The view at progress p of a shot `seconds` long."""
        return framing.cover()

    def shade(self, shot: Shot, params, sharp: np.ndarray, image: np.ndarray, subject: Subject, view: View,
              p: float) -> np.ndarray:
        """The look over `sharp`, the source sampled at `view`; `shot` keeps the layers a look
        builds (the subject's feathered mask, a blurred source) while their inputs stay the same."""
        return sharp


class Static(Effect, name="static"):
    """The largest crop of the output's aspect, placed on the subject (its top part if it is taller)."""

    setup_ms = 38


@dataclass(frozen=True)
class KenBurnsParams:
    direction: str = param("in", "in: from the wide framing to the subject; out: back")
    zoom: float = param(1.6, "how much closer the close framing is than the wide one, >= 1")
    easing: str = param("ease_in_out", "ease_in_out, linear, ease_in or ease_out")

    def __post_init__(self):
        check(self.direction in ("in", "out"), "direction", "in or out", self.direction)
        check(self.zoom >= 1.0, "zoom", ">= 1", self.zoom)
        check_easing(self.easing)


class KenBurns(Effect, name="ken_burns"):
    """An eased zoom from the wide framing toward the subject, or back out."""

    params = KenBurnsParams
    frame_ms, setup_ms = 18.9, 36

    def camera(self, framing: Framing, params: KenBurnsParams, p: float, seconds: float) -> View:
        wide, close = framing.cover(), framing.toward_subject(params.zoom)
        a, b = (wide, close) if params.direction == "in" else (close, wide)
        return framing.between(a, b, ease(p, params.easing))


@dataclass(frozen=True)
class PunchInParams:
    at: float | None = param(None, "seconds into the shot that the zoom starts; null: 40% of the way through")
    length: float = param(0.3, "seconds the zoom takes")
    zoom: float = param(1.8, "how much closer it ends than the wide framing, >= 1")

    def __post_init__(self):
        check(self.at is None or self.at >= 0, "at", ">= 0 seconds or null", self.at)
        check(self.length > 0, "length", "> 0 seconds", self.length)
        check(self.zoom >= 1.0, "zoom", ">= 1", self.zoom)


class PunchIn(Effect, name="punch_in"):
    """A quick zoom onto the subject at a chosen moment, which then holds."""

    params = PunchInParams
    frame_ms, setup_ms = 6.0, 36

    def camera(self, framing: Framing, params: PunchInParams, p: float, seconds: float) -> View:
        at = 0.4 * seconds if params.at is None else params.at
        e = ease((p * seconds - at) / params.length, "ease_in_out")
        return framing.between(framing.cover(), framing.toward_subject(params.zoom), e)


@dataclass(frozen=True)
class PanParams:
    start: str = param("auto", "the edge it starts from (left, right, top, bottom); auto: the one farther from "
                               "the subject")
    zoom: float = param(1.3, "how much closer than the wide view, which leaves room to move, >= 1")
    easing: str = param("ease_in_out", "ease_in_out, linear, ease_in or ease_out")

    def __post_init__(self):
        check(self.start in ("auto", "left", "right", "top", "bottom"), "start",
              "auto, left, right, top or bottom", self.start)
        check(self.zoom >= 1.0, "zoom", ">= 1", self.zoom)
        check_easing(self.easing)


class Pan(Effect, name="pan"):
    """A sideways (or vertical) move from the far edge that ends on the subject."""

    params = PanParams
    frame_ms, setup_ms = 15.2, 19

    def camera(self, framing: Framing, params: PanParams, p: float, seconds: float) -> View:
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
        begin = clamp_view(*framing.keep_key(cx, cy, end.w, end.h), end.w, end.h, framing.src_w, framing.src_h)
        return framing.between(begin, end, ease(p, params.easing))


@dataclass(frozen=True)
class ReframeParams:
    margin: float = param(0.08, "room kept around the subject, as a fraction of its size, 0..1")
    fill: str = param("blur", "what shows where the view reaches past the source: blur or black")
    fill_blur: float = param(0.05, "the fill's blur, as a fraction of the frame height")
    fill_dim: float = param(0.45, "how much darker the fill is than the source, 0..1")

    def __post_init__(self):
        check(0 <= self.margin <= 1, "margin", "in 0..1", self.margin)
        check(self.fill in ("blur", "black"), "fill", "blur or black", self.fill)
        check(self.fill_blur > 0, "fill_blur", "> 0", self.fill_blur)
        check(0 <= self.fill_dim <= 1, "fill_dim", "in 0..1", self.fill_dim)


class Reframe(Effect, name="reframe"):
    """Any source to any aspect with the whole subject in frame; where it cannot fit, a blurred, dimmed fill."""

    params = ReframeParams
    frame_ms, setup_ms = 9.9, 85

    def camera(self, framing: Framing, params: ReframeParams, p: float, seconds: float) -> View:
        return framing.fit(params.margin)


@dataclass(frozen=True)
class FocusParams:
    mode: str = param("blur", "blur or desaturate what lies outside the subject")
    blur: float = param(0.02, "background blur sigma, as a fraction of the frame height")
    feather: float = param(0.012, "softness of the mask's edge, as a fraction of the frame height")
    strength: float = param(1.0, "how strong the look is at the start of the shot, 0..1")
    strength_end: float | None = param(None, "at its end; null: no change")
    easing: str = param("ease_in_out", "of the change in strength: ease_in_out, linear, ease_in or ease_out")

    def __post_init__(self):
        check(self.mode in ("blur", "desaturate"), "mode", "blur or desaturate", self.mode)
        check(self.blur > 0, "blur", "> 0", self.blur)
        check(self.feather >= 0, "feather", ">= 0", self.feather)
        for name in ("strength", "strength_end"):
            v = getattr(self, name)
            check(v is None or 0 <= v <= 1, name, "in 0..1", v)
        check_easing(self.easing)

    def strength_at(self, p: float) -> float:
        end = self.strength if self.strength_end is None else self.strength_end
        return self.strength + (end - self.strength) * ease(p, self.easing)


class Focus(Effect, name="focus"):
    """The background blurred or desaturated behind the subject's feathered mask; strength animatable."""

    params = FocusParams
    frame_ms, setup_ms = 10.8, 34

    def shade(self, shot: Shot, params: FocusParams, sharp, image, subject, view, p):
        strength = params.strength_at(p)
        if strength <= 0:
            return sharp
        if params.mode == "blur":
            back = shot.sample("blurred", shot.blurred(image, params.blur), image, view)
        else:
            back = cv2.cvtColor(cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        if strength < 1:
            back = cv2.addWeighted(sharp, 1.0 - strength, back, strength, 0.0)
        return composite(sharp, back, shot.mask(subject, view, params.feather))


@dataclass(frozen=True)
class SpotlightParams:
    dim: float = param(0.6, "how much darker everything but the subject gets, 0..1")
    vignette: float = param(0.5, "extra darkening toward the frame's corners, 0..1")
    feather: float = param(0.02, "softness of the mask's edge, as a fraction of the frame height")

    def __post_init__(self):
        check(0 <= self.dim <= 1, "dim", "in 0..1", self.dim)
        check(0 <= self.vignette <= 1, "vignette", "in 0..1", self.vignette)
        check(self.feather >= 0, "feather", ">= 0", self.feather)


class Spotlight(Effect, name="spotlight"):
    """Everything but the subject darkened, with a vignette."""

    params = SpotlightParams
    frame_ms, setup_ms = 7.9, 61

    def shade(self, shot: Shot, params: SpotlightParams, sharp, image, subject, view, p):
        # Distance from the subject's centre on screen, relative to the frame's half diagonal.
        x0, y0, x1, y1 = subject.box
        cx, cy = shot.to_screen(view, (x0 + x1) / 2, (y0 + y1) / 2)
        half_diag = math.hypot(shot.out_w, shot.out_h) / 2
        dx = ((np.arange(shot.out_w, dtype=np.float32) + 0.5 - cx) / half_diag) ** 2
        dy = ((np.arange(shot.out_h, dtype=np.float32) + 0.5 - cy) / half_diag) ** 2
        r2 = np.minimum(dy[:, None] + dx[None, :], 1.0)
        shade = (1.0 - params.dim) * (1.0 - params.vignette * r2)
        a = shot.mask(subject, view, params.feather).astype(np.float32) * (1.0 / 255.0)
        gain = cv2.merge([np.round((a + (1.0 - a) * shade) * 255.0).astype(np.uint8)] * 3)
        return cv2.multiply(sharp, gain, scale=1.0 / 255.0)


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
        self.blurred = _Cached(self._soft_pyramid)  # (image, sigma): sigma is one per shot
        self.fill = _Cached(self._fill_pyramid)
        self.alpha = _Cached(self._soft_pyramid)  # (mask, feather, source size)
        self._samples: dict[str, tuple] = {}
        # Without a look, a frame is its source at a view: a still camera (reframe) shows the
        # last frame again instead of compositing its fill anew (5.7 ms a 720p frame).
        self._plain = type(self.effect).shade is Effect.shade
        self._last: tuple | None = None  # (source, view, frame)

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

    def closest(self, size: tuple[int, int], box, key=None, zoom: float = 1.0, samples: int = 17) -> float:
        """Source pixels per output pixel in the shot's closest view (at the extra `zoom` a
        transition adds), looked for at `samples` points of its progress."""
        views = [self._camera(size, box, p, zoom, key)[1] for p in np.linspace(0.0, 1.0, samples)]
        return min(min(v.w / self.out_w, v.h / self.out_h) for v in views)

    def to_screen(self, view: View, x: float, y: float) -> tuple[float, float]:
        return ((x - view.cx + view.w / 2) * self.out_w / view.w, (y - view.cy + view.h / 2) * self.out_h / view.h)

    def screen_box(self, size: tuple[int, int], box, p: float, region=None, key=None
                   ) -> tuple[float, float, float, float]:
        """Where `region` (default: the subject's box itself) is in output pixels at progress
        p, with the camera framing the subject's `box` (and faces `key`); without rendering."""
        _, view = self._camera(size, box, p, key=key)
        x0, y0, x1, y1 = box if region is None else region
        return (*self.to_screen(view, x0, y0), *self.to_screen(view, x1, y1))

    def sample(self, layer: str, pyramid: Pyramid, key, view: View) -> np.ndarray:
        """A layer sampled at a view, reused while the view and the layer's input stay the
        same: an animated look on a still camera re-blends, it does not re-warp."""
        last = self._samples.get(layer)
        if last is not None and last[0] is key and last[1] == view:
            return last[2]
        out = pyramid.sample(view, self.out_w, self.out_h)
        self._samples[layer] = (key, view, out)
        return out

    def mask(self, subject: Subject, view: View, feather: float) -> np.ndarray:
        """The subject's mask, feathered by `feather` (a fraction of the frame height), at `view`."""
        return self.sample("alpha", self.alpha(subject.mask, feather, subject.source_size), subject.mask, view)

    def frame(self, image: np.ndarray, subject: Subject, p: float, zoom: float = 1.0) -> np.ndarray:
        h, w = image.shape[:2]
        framing, view = self._camera((w, h), subject.box, p, zoom, subject.key)
        if self._plain and self._last is not None and self._last[0] is image and self._last[1] == view:
            return self._last[2]
        out = self.sample("sharp", self.sharp(image), image, view)
        out = self.effect.shade(self, self.params, out, image, subject, view, p)
        cov = coverage(view, w, h, self.out_w, self.out_h)
        if cov is not None:
            out = composite(out, self.sample("fill", self.fill(image), image, framing.cover()), cov)
        if self._plain:
            self._last = (image, view, out)
        return out
