"""The typed reads of an Editly spec's values. Every value the converter takes from the spec
goes through one of these, so a value of the wrong kind fails in one line naming its path in
the spec (`clips[0].layers[0].zoomAmount: must be a number (got 'big')`), before any work."""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from PIL import ImageColor

from raypipe.errors import JobError

log = logging.getLogger("raypipe")
_RGBA = re.compile(r"rgba\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\)")


def at(where: str, key: str) -> str:
    """The path of `key` inside the object at `where` ("" is the spec itself)."""
    return f"{where}.{key}" if where else key


def number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise JobError(where, f"must be a number (got {value!r})")
    return float(value)


@dataclass(frozen=True)
class Color:
    hex: str  # #rrggbb
    alpha: float  # 0..1


def color(value, where: str) -> Color:
    """A CSS colour as Editly's canvas reads it (names, #rgb, #rrggbbaa, rgb(a), hsl)."""
    if not isinstance(value, str):
        raise JobError(where, f"must be a colour (got {value!r})")
    text = value.strip()
    if (m := _RGBA.fullmatch(text)):
        rgb, alpha = tuple(round(float(v)) for v in m.groups()[:3]), float(m.group(4))
    else:
        try:
            *rgb, a = ImageColor.getcolor(text, "RGBA")
        except ValueError:
            raise JobError(where, f"{value!r} is not a colour") from None
        alpha = a / 255
    return Color("#" + bytes(max(0, min(255, c)) for c in rgb).hex(), alpha)


class Reads:
    """Typed reads of an object of the spec (`props`, at `where`). A key set to null reads as
    absent, as Editly's destructuring defaults have it for the keys these read."""

    where: str
    props: dict

    def path(self, key: str) -> str:
        return at(self.where, key)

    def number(self, key: str, default: float | None = None, *, low: float | None = None,
               above: float | None = None, high: float | None = None, written: bool = False) -> float | None:
        """`written`: a number may also be written as a string ("0.5"), as Editly's types allow
        for the volumes it hands to FFmpeg. `low`, `above` and `high` are the bounds the job the
        spec becomes enforces, checked here so that the error names the spec's key."""
        value = self.props.get(key)
        if value is None:
            return default
        if written and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise JobError(self.path(key), f"must be a number (got {value!r})") from None
        x = number(value, self.path(key))
        if (low is not None and x < low) or (above is not None and x <= above) or (high is not None and x > high):
            bounds = [f">= {low:g}" if low is not None else f"> {above:g}" if above is not None else "",
                      f"<= {high:g}" if high is not None else ""]
            raise JobError(self.path(key), f"must be {' and '.join(b for b in bounds if b)} (got {value!r})")
        return x

    def fraction(self, key: str, default=None) -> Fraction:
        """Seconds, exact enough for frame arithmetic; without a default, the key is required."""
        value = self.number(key, default)
        if value is None:
            raise JobError(self.path(key), "must be a number (got None)")
        return Fraction(value).limit_denominator(1_000_000)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.props.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise JobError(self.path(key), f"must be a string (got {value!r})")
        return value

    def text(self, key: str) -> str:
        """A text to draw: a string, or a number as JavaScript writes it."""
        value = self.props.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{value:g}" if isinstance(value, float) else str(value)
        return self.string(key, "")

    def mapping(self, key: str) -> dict:
        value = self.props.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise JobError(self.path(key), f"must be an object (got {value!r})")
        return value

    def color(self, key: str, default: str) -> Color:
        return color(self.props.get(key) or default, self.path(key))

    def choice(self, key: str, allowed: tuple, default):
        """An enumerated value; None in `allowed` is Editly's explicit null (zoomDirection: null)."""
        value = self.props.get(key, default)
        if value not in allowed:
            names = ", ".join("null" if a is None else str(a) for a in allowed)
            raise JobError(self.path(key), f"must be one of {names} (got {value!r})")
        return value


@dataclass(frozen=True)
class Fields(Reads):
    """An object of the spec (the spec itself at where=""), read by its path."""

    where: str
    props: dict


class Once:
    """Warning lines, each said once per spec however many layers or clips it is true of."""

    def __init__(self):
        self.said: set[str] = set()

    def warn(self, key: str, message: str, *args) -> None:
        if key not in self.said:
            self.said.add(key)
            log.warning(message, *args)
