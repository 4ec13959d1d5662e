"""Detection results as they travel through the object store.

All masks are packed into one contiguous uint8 buffer, so the whole result is one
out-of-band numpy payload: Ray stores it once in shared memory and every segment task on a
node maps the same pages. `Detections.subject()` hands out views into that buffer, never
copies. This module is numpy + OpenCV only: segment workers import it, and they must never
import torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Subject:
    """The subject of one source: box in source pixels (x0, y0, x1, y1) and a 0/255 mask."""

    box: tuple[float, float, float, float]
    mask: np.ndarray
    score: float
    method: str


@dataclass(frozen=True)
class CompactSubject:
    """A Subject with its mask as PNG bytes: how results travel from the detector to the
    driver (~100x smaller for blob masks), so that the driver's put is the only copy of
    the masks in the object store."""

    box: tuple[float, float, float, float]
    mask_png: bytes
    score: float
    method: str

    @classmethod
    def of(cls, s: Subject) -> "CompactSubject":
        ok, png = cv2.imencode(".png", s.mask)
        if not ok:
            raise ValueError("could not encode a mask")
        return cls(s.box, png.tobytes(), s.score, s.method)

    def subject(self) -> Subject:
        mask = cv2.imdecode(np.frombuffer(self.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
        return Subject(self.box, mask, self.score, self.method)


@dataclass(frozen=True)
class Detections:
    keys: tuple[str, ...]
    boxes: np.ndarray  # (n, 4) float32
    scores: np.ndarray  # (n,) float32
    methods: tuple[str, ...]
    masks: np.ndarray  # flat uint8: every mask back to back
    offsets: np.ndarray  # (n + 1,) int64 into `masks`
    shapes: np.ndarray  # (n, 2) int64: (height, width) per mask

    @classmethod
    def pack(cls, items: dict[str, Subject]) -> "Detections":
        keys = tuple(items)
        subjects = [items[k] for k in keys]
        sizes = [s.mask.size for s in subjects]
        offsets = np.zeros(len(keys) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        masks = np.empty(int(offsets[-1]), np.uint8)
        for s, lo, hi in zip(subjects, offsets[:-1], offsets[1:]):
            masks[lo:hi] = s.mask.reshape(-1)
        return cls(
            keys=keys,
            boxes=np.array([s.box for s in subjects], np.float32).reshape(-1, 4),
            scores=np.array([s.score for s in subjects], np.float32),
            methods=tuple(s.method for s in subjects),
            masks=masks,
            offsets=offsets,
            shapes=np.array([s.mask.shape[:2] for s in subjects], np.int64).reshape(-1, 2),
        )

    def subject(self, key: str) -> Subject:
        i = self.keys.index(key)
        h, w = (int(v) for v in self.shapes[i])
        mask = self.masks[self.offsets[i] : self.offsets[i + 1]].reshape(h, w)
        return Subject(tuple(float(v) for v in self.boxes[i]), mask, float(self.scores[i]), self.methods[i])

    def summary(self) -> list[dict]:
        return [
            {"source": k, "box": [round(float(v), 1) for v in b], "score": round(float(s), 4), "method": m}
            for k, b, s, m in zip(self.keys, self.boxes, self.scores, self.methods)
        ]


def subject_from_heat(heat: np.ndarray, threshold: float | None, method: str) -> Subject | None:
    """Threshold a [0, 1] heat map and keep the connected component with the most heat.

    Largest heat *mass*, not the arg-max pixel: a single hot spot should not beat a
    subject-sized region (the lesson of saliency-argmax cropping).
    """
    heat = np.clip(heat.astype(np.float32), 0.0, 1.0)
    if float(heat.max() - heat.min()) < 1e-6:
        return None
    if threshold is None:
        h8 = np.round(heat * 255).astype(np.uint8)
        t, _ = cv2.threshold(h8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        binary = h8 > t
    else:
        binary = heat >= threshold
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    mass = np.bincount(labels.reshape(-1), weights=heat.reshape(-1), minlength=n)[1:]
    best = 1 + int(np.argmax(mass))
    x, y, w, h = (int(v) for v in stats[best, :4])
    mask = np.where(labels == best, 255, 0).astype(np.uint8)
    score = float(heat[labels == best].mean())
    return Subject((float(x), float(y), float(x + w), float(y + h)), mask, score, method)
