"""Transitions, one class each: its parameters, its blend and its cost, in one place.

A blend is (outgoing(zoom), incoming(zoom), alpha, params) -> frame. Each side is a callable
that renders that shot's frame at a given extra zoom, so that a transition renders only the
sides it shows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from raypipe.config import param
from raypipe.frames.params import NoParams, check
from raypipe.frames.view import composite, ease

Side = Callable[[float], np.ndarray]

# Filled by defining a transition (`class Wipe(Transition, name="wipe")`), in the order of definition.
TRANSITIONS: dict[str, Transition] = {}


class Transition:
    """A transition is a subclass that names itself, which adds it to TRANSITIONS; its
    docstring's first paragraph says what it does (`python -m raypipe effects` prints it)."""

    name: str
    params: type = NoParams  # a frozen dataclass of `param` fields, checked in __post_init__
    # (a, b, alpha, params) -> frame; a cut has none, as it shows no frame of both shots.
    blend: Callable[[Side, Side, float, object], np.ndarray] | None = None
    blend_ms: float = 0.0  # a 1080p frame's blending on one core, beyond rendering its sides

    def __init_subclass__(cls, name: str, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = name
        TRANSITIONS[name] = cls()


class Cut(Transition, name="cut"):
    """The next shot starts on the next frame."""


class Crossfade(Transition, name="crossfade"):
    """The next shot dissolves in over this one."""

    blend_ms = 2.0

    def blend(self, a: Side, b: Side, alpha: float, params: NoParams) -> np.ndarray:
        return cv2.addWeighted(a(1.0), 1.0 - alpha, b(1.0), alpha, 0.0)


class FadeBlack(Transition, name="fade_black"):
    """Out to black over the first half, in from black over the second."""

    blend_ms = 1.0

    def blend(self, a: Side, b: Side, alpha: float, params: NoParams) -> np.ndarray:
        if alpha < 0.5:
            return cv2.convertScaleAbs(a(1.0), alpha=1.0 - 2.0 * alpha)
        return cv2.convertScaleAbs(b(1.0), alpha=2.0 * alpha - 1.0)


@dataclass(frozen=True)
class WipeParams:
    direction: str = param("left", "the way the edge travels (left, right, up, down); the next shot comes in "
                                   "behind it")
    softness: float = param(0.03, "width of the edge, as a fraction of the frame, 0..0.5")

    def __post_init__(self):
        check(self.direction in ("left", "right", "up", "down"), "direction", "left, right, up or down",
              self.direction)
        check(0 <= self.softness <= 0.5, "softness", "in 0..0.5", self.softness)


class Wipe(Transition, name="wipe"):
    """A moving soft edge uncovers the next shot."""

    params = WipeParams
    blend_ms = 8.0

    def blend(self, a: Side, b: Side, alpha: float, params: WipeParams) -> np.ndarray:
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


@dataclass(frozen=True)
class ZoomThroughParams:
    zoom: float = param(3.0, "how far the camera flies into the outgoing subject (and out of the next), > 1")

    def __post_init__(self):
        check(self.zoom > 1, "zoom", "> 1", self.zoom)


class ZoomThrough(Transition, name="zoom_through"):
    """The camera flies into this shot's subject and out of the next one's."""

    params = ZoomThroughParams
    blend_ms = 2.0

    def blend(self, a: Side, b: Side, alpha: float, params: ZoomThroughParams) -> np.ndarray:
        # Into the outgoing subject (accelerating), then out of the incoming one (decelerating);
        # the two meet, at the same extreme zoom, in a short dissolve.
        za = params.zoom ** ease(alpha / 0.6, "ease_in")
        zb = params.zoom ** (1.0 - ease((alpha - 0.4) / 0.6, "ease_out"))
        mix = ease((alpha - 0.4) / 0.2, "linear")
        if mix <= 0:
            return a(za)
        if mix >= 1:
            return b(zb)
        return cv2.addWeighted(a(za), 1.0 - mix, b(zb), mix, 0.0)
