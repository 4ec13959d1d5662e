"""Seconds as the user wrote them, and the frames they fall on."""
from __future__ import annotations

import math
from fractions import Fraction

from raypipe.errors import JobError


def meant(value: float) -> Fraction:
    """The number a float stands for: 0.1 s means 1/10, not the nearest binary float, and
    1/60 s, which no decimal writes, means 1/60 (its decimal falls just short of one frame
    at 60 fps, and rounding at a boundary that lies half a frame in would drop the frame).
    A small fraction wins only where it is the same float, which a typed decimal never is
    unless it is that fraction."""
    simple = Fraction(value).limit_denominator(1_000_000)
    return simple if float(simple) == value else Fraction(repr(value))


def number(value, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobError(where, f"must be a number (got {value!r})")
    if not math.isfinite(value):
        raise JobError(where, f"must be finite (got {value})")
    return meant(value)


def to_frame(t: Fraction, fps: Fraction) -> int:
    return math.floor(t * fps + Fraction(1, 2))  # round half up, the same at every boundary
