"""Cards: a segment's picture made from its source's text, with no file: `color:#RRGGBB`,
`gradient:#RRGGBB,#RRGGBB[,angle]` or `radial:#RRGGBB,#RRGGBB[,radius]`, a title or an end
card. A box layer's gradients, whose colours may be see-through, are drawn here too.

The planner writes a card at the output's size (`color:#1a2b3c@1280x720`), so that its
pixels map one to one onto the frame's and a gradient runs corner to corner of what is
shown, whatever the aspect. A gradient's angle is CSS's: the direction it runs from the first
colour to the second, clockwise from up; 180 (the default) runs top to bottom, 90 left to right.
A radial one runs from the first colour at the centre to the second at `radius`, a fraction of
the frame's longer side (the default, 0, reaches the corners).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from raypipe.errors import MediaError

PREFIXES = ("color:", "gradient:", "radial:")
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
_SIZE = re.compile(r"@(\d+)x(\d+)")


def is_card(uri: str) -> bool:
    return uri.startswith(PREFIXES)


@dataclass(frozen=True)
class Card:
    colors: tuple[tuple[int, int, int], ...]  # one: a flat card; two: a gradient's ends
    angle: float  # degrees, CSS's convention
    size: tuple[int, int] | None  # (width, height); None: not yet sized by the planner
    radius: float | None = None  # a radial gradient's, a fraction of the longer side; None: linear

    def uri(self) -> str:
        hexes = ",".join("#" + bytes(c).hex() for c in self.colors)
        if len(self.colors) == 1:
            body = f"color:{hexes}"
        else:
            body = f"gradient:{hexes},{self.angle:g}" if self.radius is None else f"radial:{hexes},{self.radius:g}"
        return body + (f"@{self.size[0]}x{self.size[1]}" if self.size else "")

    def image(self) -> np.ndarray:
        """RGB uint8 (H, W, 3) at the card's size (64 x 64 where it has none)."""
        w, h = self.size or (64, 64)
        if len(self.colors) == 1:
            return np.full((h, w, 3), self.colors[0], np.uint8)
        if self.radius is None:
            t = linear(w, h, self.angle)[:, :, None]
        else:
            t = radial(w, h, self.radius * max(w, h) if self.radius > 0 else math.hypot(w, h) / 2)[:, :, None]
        a, b = (np.array(c, np.float32) for c in self.colors)
        return np.ascontiguousarray(np.round(a + (b - a) * t), dtype=np.uint8)


def _centred(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's centre from the box's centre: (1, w) and (h, 1)."""
    xs, ys = np.arange(w, dtype=np.float32) + 0.5 - w / 2, np.arange(h, dtype=np.float32) + 0.5 - h / 2
    return xs[None, :], ys[:, None]


def linear(w: int, h: int, angle: float) -> np.ndarray:
    """float32 (h, w): position along the direction, 0 at the first colour's edge and 1 at the
    second's, as CSS measures it: the gradient line is as long as the box's extent in that direction."""
    rad = math.radians(angle)
    dx, dy = math.sin(rad), -math.cos(rad)
    xs, ys = _centred(w, h)
    return np.clip((xs * dx + ys * dy) / (abs(w * dx) + abs(h * dy)) + 0.5, 0.0, 1.0)


def radial(w: int, h: int, radius: float) -> np.ndarray:
    """float32 (h, w): distance from the centre, 0 there and 1 at `radius` pixels and beyond."""
    xs, ys = _centred(w, h)
    return np.clip(np.hypot(xs, ys) / radius, 0.0, 1.0)


@dataclass(frozen=True)
class Gradient:
    """A box's fill of two RGBA colours, blended as CSS blends them (premultiplied by alpha,
    so a colour fading out keeps its hue): linear at `angle` (CSS's), or radial from the
    centre out to `radius`, a fraction of the box's longer side (0: to its corners)."""

    start: tuple[int, int, int, int]
    end: tuple[int, int, int, int]
    angle: float | None = 180.0  # None: radial
    radius: float = 0.0

    def rgba(self, w: int, h: int) -> np.ndarray:
        """Straight-alpha RGBA uint8 (h, w, 4)."""
        if self.angle is None:
            t = radial(w, h, self.radius * max(w, h) if self.radius > 0 else math.hypot(w, h) / 2)
        else:
            t = linear(w, h, self.angle)
        a, b = (np.array(c, np.float32) / 255 for c in (self.start, self.end))
        pa, pb = np.append(a[:3] * a[3], a[3]), np.append(b[:3] * b[3], b[3])
        mixed = pa + (pb - pa) * t[:, :, None]
        alpha = mixed[:, :, 3:]
        rgb = np.divide(mixed[:, :, :3], alpha, out=np.zeros_like(mixed[:, :, :3]), where=alpha > 0)
        return np.round(np.concatenate([rgb, alpha], axis=2) * 255).astype(np.uint8)


_RGBA_HEX = re.compile(r"#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?")


def gradient(text: str) -> Gradient:
    """`gradient:A,B[,angle]` or `radial:A,B[,radius]`, A and B #RRGGBB or #RRGGBBAA; a
    MediaError saying what is wrong with it."""
    kind, _, rest = text.partition(":")
    parts = [p.strip() for p in rest.split(",")]
    if kind not in ("gradient", "radial") or len(parts) not in (2, 3) or \
            not all(_RGBA_HEX.fullmatch(p) for p in parts[:2]):
        raise MediaError(f"{text!r} is not a gradient: write gradient:A,B[,angle] or radial:A,B[,radius], with A "
                         "and B #RRGGBB or #RRGGBBAA")
    ends = tuple(tuple(int((p + "ff")[i:i + 2], 16) for i in (1, 3, 5, 7)) for p in parts[:2])
    try:
        extra = float(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise MediaError(f"{text!r}: {parts[2]!r} is not a number") from None
    if kind == "gradient":
        return Gradient(*ends, angle=(180.0 if extra is None else extra) % 360)
    if extra is not None and not extra > 0:
        raise MediaError(f"{text!r}: the radius must be > 0 (got {parts[2]})")
    return Gradient(*ends, angle=None, radius=extra or 0.0)


def parse(uri: str) -> Card:
    """The card a source names; a MediaError saying what is wrong with it."""
    kind, _, rest = uri.partition(":")
    size = None
    if (m := _SIZE.search(rest)) and m.end() == len(rest):
        size, rest = (int(m.group(1)), int(m.group(2))), rest[:m.start()]
    parts = [p.strip() for p in rest.split(",")]
    wanted = {"color": "color:#RRGGBB", "gradient": "gradient:#RRGGBB,#RRGGBB[,angle]",
              "radial": "radial:#RRGGBB,#RRGGBB[,radius]"}[kind]
    count = 1 if kind == "color" else 2
    if len(parts) not in ((count,) if kind == "color" else (2, 3)) or not all(_HEX.fullmatch(p) for p in parts[:count]):
        raise MediaError(f"{uri!r} is not a card: write {wanted}")
    colors = tuple(tuple(int(p[i:i + 2], 16) for i in (1, 3, 5)) for p in parts[:count])
    extra = None
    if len(parts) == 3:
        try:
            extra = float(parts[2])
        except ValueError:
            what = "the angle" if kind == "gradient" else "the radius"
            raise MediaError(f"{uri!r}: {what} {parts[2]!r} is not a number") from None
    if kind != "radial":
        return Card(colors, (180.0 if extra is None else extra) % 360, size)
    if extra is not None and not extra >= 0:
        raise MediaError(f"{uri!r}: the radius must be >= 0, a fraction of the longer side (got {parts[2]})")
    return Card(colors, 180.0, size, extra or 0.0)


def sized(uri: str, width: int, height: int) -> str:
    """The card at an output's size, in its one canonical spelling."""
    card = parse(uri)
    return Card(card.colors, card.angle, (width, height), card.radius).uri()
