"""Detection results as they travel through the object store.

A still has one keyframe; a video has one per sampled time, and `Track` turns them into a
smooth subject path. All masks are packed into one contiguous uint8 buffer, so the whole result is one
out-of-band numpy payload: Ray stores it once in shared memory and every segment task on a
node maps the same pages. `Detections.subject()` hands out views into that buffer, never
copies. This module is numpy + OpenCV only: segment workers import it, and they must never
import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from raypipe.detection.faces import union


@dataclass(frozen=True)
class Subject:
    """The subject of one source: box in source pixels (x0, y0, x1, y1) and a 0..255 mask
    over the whole source, possibly at a lower resolution than the source's `size`."""

    box: tuple[float, float, float, float]
    mask: np.ndarray
    score: float
    method: str
    size: tuple[int, int] | None = None  # the source's (width, height); None: the mask's
    faces: tuple = ()  # each face's whole head with headroom, in source pixels (raypipe.detection.faces)

    @property
    def source_size(self) -> tuple[int, int]:
        return self.size or (self.mask.shape[1], self.mask.shape[0])

    @property
    def key(self) -> tuple[float, float, float, float] | None:
        """What the framing must keep whole: every face (None: no face was found)."""
        return union(self.faces)

    def at_size(self, size: tuple[int, int]) -> Subject:
        """The same subject in the pixels of the source at `size` (found on a smaller copy)."""
        sx, sy = size[0] / self.source_size[0], size[1] / self.source_size[1]

        def scaled(b):
            return (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)

        return replace(self, box=scaled(self.box), faces=tuple(scaled(f) for f in self.faces), size=tuple(size))


# Masks travel at most this many pixels on their long side: CLIP's map is a patch grid
# (at most 28x28 by default) and saliency works 128 pixels wide, so a full-resolution mask
# of a 12-megapixel photo would move 12 MB through the object store to carry no more detail.
MASK_SIDE = 512


def bounded(mask: np.ndarray, side: int = MASK_SIDE) -> np.ndarray:
    h, w = mask.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return mask
    return cv2.resize(mask, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class CompactSubject:
    """A Subject with its mask as PNG bytes: how results travel from the detector to the
    driver (~100x smaller for blob masks), so that the driver's put is the only copy of
    the masks in the object store."""

    box: tuple[float, float, float, float]
    mask_png: bytes
    score: float
    method: str
    size: tuple[int, int]
    faces: tuple = ()

    @classmethod
    def of(cls, s: Subject) -> CompactSubject:
        ok, png = cv2.imencode(".png", bounded(s.mask))
        if not ok:
            raise ValueError("could not encode a mask")
        return cls(s.box, png.tobytes(), s.score, s.method, s.source_size, tuple(s.faces))

    def subject(self) -> Subject:
        mask = cv2.imdecode(np.frombuffer(self.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
        return Subject(self.box, mask, self.score, self.method, self.size, self.faces)


FACE_HOLD_S = 1.0


def _local_linear(times: np.ndarray, values: np.ndarray, t: float, sigma: float) -> tuple[float, ...]:
    """The value at t of a line fitted through (times, values) with Gaussian weights."""
    if len(times) == 1:
        return tuple(float(v) for v in values[0])
    d = times - t
    w = np.exp(-0.5 * (d / max(sigma, 1e-3)) ** 2)
    if w.sum() < 1e-12:  # keyframes far apart against the smoothing: the nearest one
        w = (np.abs(d) == np.abs(d).min()).astype(np.float64)
    s0, s1, s2 = w.sum(), (w * d).sum(), (w * d * d).sum()
    t0, t1 = w @ values, (w * d) @ values
    det = s0 * s2 - s1 * s1
    if det <= 1e-9 * s0 * max(s2, 1e-12):  # one keyframe carries all the weight: its value
        return tuple(float(v) for v in t0 / s0)
    return tuple(float(v) for v in (s2 * t0 - s1 * t1) / det)


@dataclass(frozen=True)
class Track:
    """A source's subject over time: keyframes in source seconds (one, at 0, for a still).

    The box at time t is a local-linear fit of the keyframe boxes with Gaussian weights (a
    smooth function of t, so a camera that follows it cannot jitter however noisy single
    detections are). A weighted mean would be pulled toward the middle near the ends of the
    keyframes (~26 px of lag for 100 px/s at 0.5 s of smoothing); a line through the
    weighted points follows a moving subject to the last frame.
    """

    times: np.ndarray
    boxes: np.ndarray
    masks: tuple[np.ndarray, ...]
    score: float
    method: str
    smoothing: float  # seconds (the Gaussian's sigma)
    size: tuple[int, int]  # the source's (width, height)
    heads: np.ndarray | None = None  # (k, 4): each keyframe's faces' union; NaN where none

    def key_at(self, t: float) -> tuple[float, float, float, float] | None:
        """The faces to keep whole at time t, smoothed over the keyframes that found any like
        the subject's box (a camera that keeps them whole then glides with them instead of
        jumping at each keyframe), held within FACE_HOLD_S of the nearest (a cascade misses
        a face that turns or fills the frame for a keyframe or two; the face has not left)."""
        if self.heads is None:
            return None
        found = np.flatnonzero(~np.isnan(self.heads[:, 0]))
        if not len(found) or np.min(np.abs(self.times[found] - t)) > FACE_HOLD_S:
            return None
        times = self.times[found]
        # Beyond the first and last sighting the faces stay where they were last seen.
        return _local_linear(times, self.heads[found].astype(np.float64), min(max(t, times[0]), times[-1]),
                             self.smoothing)

    def box_at(self, t: float) -> tuple[float, float, float, float]:
        if len(self.times) == 1:
            return tuple(float(v) for v in self.boxes[0])
        # Past the keyframes by more than one interval, the path holds still rather than
        # extrapolating a motion nobody saw.
        step = float(np.median(np.diff(self.times)))
        return _local_linear(self.times, self.boxes, min(max(t, self.times[0] - step), self.times[-1] + step),
                             self.smoothing)

    def mask_at(self, t: float) -> np.ndarray:
        """Linear between the two keyframes around t; a view into shared memory at a keyframe."""
        k = int(np.searchsorted(self.times, t, side="right"))
        if k == 0 or k == len(self.times):
            return self.masks[min(k, len(self.times) - 1)]
        t0, t1 = self.times[k - 1], self.times[k]
        a = (t - t0) / (t1 - t0)
        if a < 1e-6:
            return self.masks[k - 1]
        return cv2.addWeighted(self.masks[k - 1], 1.0 - a, self.masks[k], a, 0.0)

    def at(self, t: float) -> Subject:
        key = self.key_at(t)
        return Subject(self.box_at(t), self.mask_at(t), self.score, self.method, self.size, (key,) if key else ())


Keyframes = list[tuple[float, Subject]]


@dataclass(frozen=True)
class Detections:
    keys: tuple[str, ...]
    first: np.ndarray  # (n + 1,) int64: source i owns keyframes first[i]:first[i + 1]
    times: np.ndarray  # (k,) float64, source seconds
    boxes: np.ndarray  # (k, 4) float32
    scores: np.ndarray  # (k,) float32
    methods: tuple[str, ...]
    masks: np.ndarray  # flat uint8: every keyframe's mask back to back
    offsets: np.ndarray  # (k + 1,) int64 into `masks`
    shapes: np.ndarray  # (k, 2) int64: (height, width) per mask
    sizes: np.ndarray  # (n, 2) int64: (width, height) per source
    smoothing: float = 0.5
    heads: np.ndarray | None = None  # (k, 4) float32: each keyframe's faces' union, NaN where none
    face_counts: np.ndarray | None = None  # (k,) int32

    @classmethod
    def pack(cls, items: dict[str, Subject | Keyframes], smoothing: float = 0.5) -> Detections:
        keys = tuple(items)
        tracks = [v if isinstance(v, list) else [(0.0, v)] for v in (items[k] for k in keys)]
        first = np.zeros(len(keys) + 1, np.int64)
        np.cumsum([len(t) for t in tracks], out=first[1:])
        flat = [(t, replace(s, mask=bounded(s.mask), size=s.source_size)) for track in tracks for t, s in track]
        subjects = [s for _, s in flat]
        offsets = np.zeros(len(flat) + 1, np.int64)
        np.cumsum([s.mask.size for s in subjects], out=offsets[1:])
        masks = np.empty(int(offsets[-1]), np.uint8)
        for s, lo, hi in zip(subjects, offsets[:-1], offsets[1:]):
            masks[lo:hi] = s.mask.reshape(-1)
        return cls(
            keys=keys,
            first=first,
            times=np.array([t for t, _ in flat], np.float64),
            boxes=np.array([s.box for s in subjects], np.float32).reshape(-1, 4),
            scores=np.array([s.score for s in subjects], np.float32),
            methods=tuple(s.method for s in subjects),
            masks=masks,
            offsets=offsets,
            shapes=np.array([s.mask.shape[:2] for s in subjects], np.int64).reshape(-1, 2),
            sizes=np.array([track[0][1].source_size for track in tracks], np.int64).reshape(-1, 2),
            smoothing=smoothing,
            heads=np.array([s.key or (np.nan,) * 4 for s in subjects], np.float32).reshape(-1, 4),
            face_counts=np.array([len(s.faces) for s in subjects], np.int32),
        )

    def _mask(self, k: int) -> np.ndarray:
        h, w = (int(v) for v in self.shapes[k])
        return self.masks[self.offsets[k] : self.offsets[k + 1]].reshape(h, w)

    def track(self, key: str) -> Track:
        i = self.keys.index(key)
        lo, hi = int(self.first[i]), int(self.first[i + 1])
        return Track(self.times[lo:hi], self.boxes[lo:hi].astype(np.float64),
                     tuple(self._mask(k) for k in range(lo, hi)), float(self.scores[lo:hi].mean()),
                     self.methods[lo], self.smoothing, self._size(i), self.heads[lo:hi].astype(np.float64))

    def _size(self, i: int) -> tuple[int, int]:
        return int(self.sizes[i][0]), int(self.sizes[i][1])

    @property
    def nbytes(self) -> int:
        """What this puts in the object store (its arrays; the rest is a few hundred bytes)."""
        return sum(a.nbytes for a in (self.first, self.times, self.boxes, self.scores, self.masks, self.offsets,
                                      self.shapes, self.sizes, self.heads, self.face_counts))

    def subject(self, key: str) -> Subject:
        """The subject of a still (the first keyframe of a video)."""
        i = self.keys.index(key)
        k = int(self.first[i])
        key = self.heads[k]
        return Subject(tuple(float(v) for v in self.boxes[k]), self._mask(k), float(self.scores[k]), self.methods[k],
                       self._size(i), () if np.isnan(key[0]) else (tuple(float(v) for v in key),))

    def summary(self) -> list[dict]:
        out = []
        for i, key in enumerate(self.keys):
            lo, hi = int(self.first[i]), int(self.first[i + 1])
            faces = int(self.face_counts[lo:hi].max())
            # Which signals decided this source's framing: the subject's mask, and its faces.
            entry = {"source": key, "box": [round(float(v), 1) for v in self.boxes[lo]],
                     "score": round(float(self.scores[lo:hi].mean()), 4), "method": self.methods[lo],
                     "faces": faces, "framed_by": f"{self.methods[lo]}+faces" if faces else self.methods[lo]}
            if hi - lo > 1 or self.times[lo] != 0:
                entry["keyframes"] = hi - lo
                entry["seconds"] = [round(float(self.times[lo]), 3), round(float(self.times[hi - 1]), 3)]
            out.append(entry)
        return out


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
