"""How a layer comes in and goes out: one object per animation, each a pure function of how far
in (or out) the layer is, so every frame is a function of its global index."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pose:
    """How a layer is drawn at one frame, against where it rests: its opacity, a shift in
    pixels, a scale about its centre, and the fraction of its width shown from the left."""

    opacity: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    reveal: float = 1.0

    def then(self, other: Pose) -> Pose:
        """Both at once (an entrance that has not finished when the exit starts)."""
        return Pose(min(self.opacity, other.opacity), self.dx + other.dx, self.dy + other.dy,
                    self.scale * other.scale, min(self.reveal, other.reveal))


@dataclass(frozen=True)
class Box:
    """A layer's resting place, (x, y) its top-left pixel, in a frame of out_w x out_h."""

    x: int
    y: int
    w: int
    h: int
    out_w: int
    out_h: int


def _settle(e: float) -> float:
    """Distance still to go at e (0: start, 1: at rest): quick at first, settling (ease-out);
    read backwards, an exit that starts slowly and speeds up."""
    return (1.0 - e) ** 2


class Fade:
    """Opacity from 0 to 1, linearly."""

    def pose(self, e: float, box: Box, entering: bool) -> Pose:
        return Pose(opacity=e)


@dataclass(frozen=True)
class Slide:
    """From just past the frame's edge to its place (in), or from its place out past the
    opposite edge (out), moving the way its name says, easing."""

    dx: int  # the direction it moves: -1 left, 1 right, 0 neither
    dy: int  # -1 up, 1 down

    def pose(self, e: float, box: Box, entering: bool) -> Pose:
        # The edge it comes in from is behind its motion; the one it leaves by, ahead of it.
        ahead = 1 if not entering else -1
        sx, sy = self.dx * ahead, self.dy * ahead
        far_x = (box.out_w - box.x) if sx > 0 else -(box.x + box.w) if sx < 0 else 0
        far_y = (box.out_h - box.y) if sy > 0 else -(box.y + box.h) if sy < 0 else 0
        return Pose(dx=far_x * _settle(e), dy=far_y * _settle(e))


class Zoom:
    """Grows from nothing to its size about its centre (in), or shrinks to nothing (out), easing."""

    def pose(self, e: float, box: Box, entering: bool) -> Pose:
        return Pose(scale=1.0 - _settle(e))


class Wipe:
    """Revealed from its left edge to its right (in), or hidden from its right edge back (out)."""

    def pose(self, e: float, box: Box, entering: bool) -> Pose:
        return Pose(reveal=1.0 - _settle(e))


ANIMATIONS = {
    "fade": Fade(), "slide_left": Slide(-1, 0), "slide_right": Slide(1, 0), "slide_up": Slide(0, -1),
    "slide_down": Slide(0, 1), "zoom": Zoom(), "wipe": Wipe(),
}
