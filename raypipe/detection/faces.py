"""Faces, as a framing signal beside the subject's mask (as AutoFlip fuses face and object
signals): a shot that frames a person's body and cuts their face is one a person rejects.

OpenCV's Haar cascades ship inside its 4.x wheels, so nothing is downloaded at run time.
Chosen by measurement on the labelled set (`raypipe/bench/data/detect_labels.json`, 640 px, 2 cores):
the frontal cascade (alt2) finds the astronaut's and the generated scenes' faces, the profile
cascade (both ways) the cameraman's; neither fires on the coffee or the rocket. About 50 ms
(frontal) and 120 ms (profile) per image. The two cat cascades are left out: on twelve
versions of the cat photograph (scaled 0.6-2.5x, set in a larger frame, cropped; padded so
a face that fills the frame has surroundings) their best setting found its face in 2, while
their scores on 17 photographs without a cat reached those of the hits.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

WORK_SIDE = 640  # the cascades run on a copy at most this many pixels a side
# A cascade's box holds the eyes, nose and mouth: the head, whole, reaches this far past it
# (fractions of the box): the hair above, the chin below, the ears at the sides.
HEAD = {"top": 0.6, "bottom": 0.3, "sides": 0.25}


_LOADED = threading.local()


def _cascades() -> tuple:
    """This thread's cascades: one CascadeClassifier run from two threads at once crashes the
    process (its detectMultiScale keeps working buffers in the object)."""
    if not hasattr(_LOADED, "cascades"):
        _LOADED.cascades = tuple(cv2.CascadeClassifier(cv2.data.haarcascades + name)
                                 for name in ("haarcascade_frontalface_alt2.xml", "haarcascade_profileface.xml"))
    return _LOADED.cascades


def _intersection(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _area(a) -> float:
    return (a[2] - a[0]) * (a[3] - a[1])


def iou(a, b) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    inter = _intersection(a, b)
    union_ = _area(a) + _area(b) - inter
    return inter / union_ if union_ > 0 else 0.0


def _overlap(a, b) -> float:
    """How much of the smaller box lies in the other: a face found again inside itself at
    another scale has a small IoU with it but is the same face."""
    smaller = min(_area(a), _area(b))
    return _intersection(a, b) / smaller if smaller > 0 else 0.0


def find_faces(rgb: np.ndarray) -> tuple[tuple[float, float, float, float], ...]:
    """Each face's whole head with headroom, in the image's pixels, largest first."""
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    side = max(24, int(0.06 * min(gray.shape)))
    frontal, profile = _cascades()
    found = [tuple(b) for b in frontal.detectMultiScale(gray, 1.1, 5, minSize=(side, side))]
    found += [tuple(b) for b in profile.detectMultiScale(gray, 1.1, 5, minSize=(side, side))]
    flipped = profile.detectMultiScale(cv2.flip(gray, 1), 1.1, 5, minSize=(side, side))
    found += [(gray.shape[1] - x - bw, y, bw, bh) for x, y, bw, bh in flipped]
    boxes = sorted(((x / scale, y / scale, (x + bw) / scale, (y + bh) / scale) for x, y, bw, bh in found),
                   key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    kept: list = []
    for b in boxes:  # the same face seen by two cascades, both ways or at two scales: the larger box
        if all(_overlap(b, k) < 0.5 for k in kept):
            kept.append(b)
    heads = []
    for x0, y0, x1, y1 in kept:
        bw, bh = x1 - x0, y1 - y0
        heads.append((max(0.0, x0 - HEAD["sides"] * bw), max(0.0, y0 - HEAD["top"] * bh),
                      min(float(w), x1 + HEAD["sides"] * bw), min(float(h), y1 + HEAD["bottom"] * bh)))
    return tuple(heads)


def union(boxes) -> tuple[float, float, float, float] | None:
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
