"""A video layer: a clip over the segments (picture in picture, a mosaic, a clip with an alpha
look over another), from `cut_from` to `cut_to` of it at `speed`, fitted into `width` x
`height` of the frame. It is probed when the job is planned; each task decodes it once, in
order, over its own frames only, as a clip segment is, and frames past its end hold the last."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from raypipe.errors import JobError, MediaError
from raypipe.frames.layers.fixed import Fixed, within
from raypipe.frames.view import soft
from raypipe.media import is_video, normalize, read_frames
from raypipe.media.video import check_cut

FITS = ("contain", "cover", "stretch", "contain-blur")
# contain-blur's fill: the frame stretched to the box and blurred by this fraction of its height.
FILL_BLUR = 0.05


def _resized(image: np.ndarray, w: int, h: int) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == (w, h):
        return image
    shrink = w < image.shape[1] or h < image.shape[0]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@dataclass(frozen=True)
class VideoLayer(Fixed):
    """A clip in a box of the frame: `contain` whole, centred, the rest of the box clear;
    `cover` filling it, cropped about its centre; `stretch` to it; `contain-blur` whole over a
    blurred copy stretched to the box."""

    source: str
    shape: tuple[int, int]
    fit: str
    start: float  # seconds of the source that its first frame shows
    speed: float
    hold: float  # seconds of the source: later frames show the one on screen then

    keys = ("source", "cut_from", "cut_to", "speed", "fit", "width", "height")

    @classmethod
    def make(cls, cfg, where: str, out_w: int, out_h: int, read) -> VideoLayer:
        if not cfg.source or not str(cfg.source).strip():
            raise JobError(f"{where}.source", "a video layer needs a source (a path or a URI)")
        uri = normalize(str(cfg.source).strip())
        if not is_video(uri):
            raise JobError(f"{where}.source", f"{uri} is not a video file")
        fit = cfg.fit or "contain"
        if fit not in FITS:
            raise JobError(f"{where}.fit", f"must be one of {', '.join(FITS)} (got {cfg.fit!r})")
        if not 0 < cfg.speed <= 16:
            raise JobError(f"{where}.speed", f"must be > 0 and <= 16 (got {cfg.speed})")
        w = round(within(cfg, "width", where, 0, 1, 1.0) * out_w)
        h = round(within(cfg, "height", where, 0, 1, 1.0) * out_h)
        try:
            info = read.probe(uri)
        except MediaError as e:
            raise JobError(f"{where}.source", str(e)) from None
        start = float(cfg.cut_from)
        end = info.duration if cfg.cut_to is None else float(cfg.cut_to)
        check_cut(where, ("cut_from", "cut_to"), (cfg.cut_from, cfg.cut_to), start, end, uri, info.duration)
        # Half a source frame short of the end: the last frame of the cut, not the one after it.
        hold = max(start, end - 0.5 / (info.fps or 30.0))
        return cls(uri, (max(h, 1), max(w, 1)), fit, start, float(cfg.speed), hold)

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,)

    def renamed(self, name) -> VideoLayer:
        return dataclasses.replace(self, source=name(self.source))

    def reel(self, layer, variant: int, frames: range, counter=None) -> Playing:
        return Playing(self, layer, frames, counter)

    def inside(self, iw: int, ih: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) in the box of a whole iw x ih frame fitted inside it, centred."""
        bh, bw = self.shape
        scale = min(bw / iw, bh / ih)
        w, h = min(bw, max(1, round(iw * scale))), min(bh, max(1, round(ih * scale)))
        return (bw - w) // 2, (bh - h) // 2, w, h

    def alpha(self, iw: int, ih: int) -> np.ndarray:
        """float32 of the box's shape: 1 where a frame of iw x ih shows, 0 where the box is clear."""
        if self.fit != "contain":
            return np.ones(self.shape, np.float32)
        x, y, w, h = self.inside(iw, ih)
        alpha = np.zeros(self.shape, np.float32)
        alpha[y:y + h, x:x + w] = 1.0
        return alpha

    def picture(self, image: np.ndarray) -> np.ndarray:
        """A decoded RGB frame fitted into the box, as `fit` says: RGB of the box's shape."""
        bh, bw = self.shape
        ih, iw = image.shape[:2]
        if self.fit == "stretch":
            return np.ascontiguousarray(_resized(image, bw, bh))
        if self.fit == "cover":
            scale = max(bw / iw, bh / ih)
            cw, ch = min(iw, round(bw / scale)), min(ih, round(bh / scale))
            x, y = (iw - cw) // 2, (ih - ch) // 2
            return np.ascontiguousarray(_resized(image[y:y + ch, x:x + cw], bw, bh))
        if self.fit == "contain-blur":
            canvas = _resized(soft(_resized(image, bw, bh), FILL_BLUR * bh), bw, bh).copy()
        else:
            canvas = np.zeros((bh, bw, 3), np.uint8)
        x, y, w, h = self.inside(iw, ih)
        canvas[y:y + h, x:x + w] = _resized(image, w, h)
        return canvas


class Playing:
    """A video layer over one task's frames: decoded once, in order, from the task's first
    frame it is on. Global frame k shows the source at start + speed * (k - the layer's start)
    / fps, held at `hold`: the same in every task, so a frame is a function of its index."""

    def __init__(self, kind: VideoLayer, layer, frames: range, counter=None):
        first, last = max(frames.start, layer.start), min(frames.stop, layer.end)
        self.kind, self.shape, self.next = kind, kind.shape, first
        self.decoded = read_frames(kind.source, kind.start + kind.speed * float((first - layer.start) / layer.fps),
                                   kind.speed, layer.fps, max(last - first, 0), counter, kind.hold)
        self.image = self.parts = self.mask = None

    def at(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        while self.next <= k:
            image = next(self.decoded)
            if image is not self.image:  # a frame held or shown again (slow motion) is fitted once
                if self.mask is None:
                    self.mask = self.kind.alpha(image.shape[1], image.shape[0])
                self.image, self.parts = image, (self.kind.picture(image), self.mask)
            self.next += 1
        return self.parts
