"""Detection, once per render: one detector, one pass over every distinct source.

This module stays free of torch: the CLIP detector lives in `raypipe.detection.clip`, which imports
torch only when weights may be there to load, in the driver (or, for a GPU, in one actor).
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np

from raypipe.detection.cache import Detection, DetectionCache
from raypipe.detection.detections import CompactSubject, Keyframes, Subject, bounded
from raypipe.detection.faces import WORK_SIDE, find_faces
from raypipe.detection.info import DetectionInfo, LoadCounter
from raypipe.detection.saliency import detect_saliency
from raypipe.media import ReadCounter, cards, keyframes, load_image_sized

log = logging.getLogger(__name__)

class SaliencyDetector:
    name = "saliency"
    device = "cpu"
    batch = 1
    side = 128  # the longer side of what it looks at (its maps' grid): a larger photo is decoded smaller

    def detect(self, rgb, prompts=()):  # no prompts: the most salient region is the subject
        return detect_saliency(rgb)

    def threads(self, n: int) -> None:  # one image at a time, on one thread
        pass

    @staticmethod
    def prepare(rgb):
        return rgb

    def detect_prepared(self, images, prompts=()):
        return [detect_saliency(rgb) for rgb in images]


def resolve_kind(cfg) -> tuple[str, str | None]:
    """The detector that will run, and why it is not the configured one; found without
    importing torch (so the detection cache's keys cost nothing). Weights on storage are
    looked up each time (a found object is remembered for a while): a store that could not be
    reached once must not make the fallback stick for the process's life."""
    resolve = _resolve.__wrapped__ if cfg.pretrained and "://" in cfg.pretrained else _resolve
    return resolve(cfg.kind, cfg.fallback, cfg.model, cfg.pretrained)


@functools.lru_cache(maxsize=8)
def _resolve(kind, fallback, model, pretrained) -> tuple[str, str | None]:
    if kind == "clip" and fallback == "saliency":
        from raypipe.detection.clip import weights_missing

        missing = weights_missing(SimpleNamespace(model=model, pretrained=pretrained))
        if missing:
            return "saliency", missing
    return kind, None


def make_detector(cfg, loads: LoadCounter):
    """The configured detector, and why it is not the configured one when it fell back; a
    model it loads is counted in `loads`."""
    kind, missing = resolve_kind(cfg)
    if missing:  # fall back without importing torch
        log.warning("CLIP UNAVAILABLE, FALLING BACK TO SALIENCY: %s", missing)
        return SaliencyDetector(), missing
    if kind == "saliency":
        return SaliencyDetector(), None
    from raypipe.detection.clip import ClipDetector, WeightsUnavailable

    try:
        return ClipDetector(cfg, loads), None
    except WeightsUnavailable as e:
        if cfg.fallback != "saliency":
            raise
        log.warning("CLIP UNAVAILABLE, FALLING BACK TO SALIENCY: %s", e)
        return SaliencyDetector(), str(e)


def still_side(cfg, detector_side: int) -> int:
    """The side a still is decoded at: the most that the detector and the face finder look at."""
    return max(detector_side, WORK_SIDE if cfg.faces else 0)


def presumed_side(cfg) -> int:
    """still_side, known before the model loads where the config says it (a CLIP model's input
    size where `image_size` does not: 224, that of nearly every open_clip model)."""
    if resolve_kind(cfg)[0] == "saliency":
        return still_side(cfg, SaliencyDetector.side)
    from raypipe.detection.clip import HEAT_SIDE  # no torch in it

    return still_side(cfg, max(HEAT_SIDE, *(cfg.image_size or (224,))))


@dataclass(frozen=True)
class Look:
    """A still as the detector takes it, made without the model: a batch makes its rows' looks
    ahead, beside the model (while it loads, and while it runs on the rows before)."""

    image: np.ndarray  # decoded and reduced to at most `side` a side
    size: tuple[int, int]  # the still's upright (width, height) at full size
    faces: tuple
    side: int


def look(cfg, uri: str, side: int, counter: ReadCounter | None = None) -> Look:
    """Decoded no larger than needed (a 12-megapixel JPEG at a quarter of its size: 0.3 s saved
    a photo), reduced to `side`, so that only that much is held, and its faces found."""
    image, size = load_image_sized(uri, counter, side)
    image = bounded(image, side)
    return Look(image, size, find_faces(image) if cfg.faces else (), side)


def subjectless(size: tuple[int, int]) -> Subject:
    """A source with no subject: an empty box at its centre, which framing centres on and
    nothing overlaps, and no face."""
    w, h = size
    return Subject((w / 2, h / 2, w / 2, h / 2), np.zeros((8, 8), np.uint8), 0.0, "card", (w, h))


class Made:
    """One owner's detector (a render's, an engine's, an actor's), made when a source first
    misses the cache and kept for every later call, so that a model loads once; its loads
    counted in `loads`. `make(cfg, loads)` makes it (and why it fell back, if it did)."""

    def __init__(self, make=make_detector, loads: LoadCounter | None = None):
        self.make, self.loads = make, LoadCounter() if loads is None else loads
        self.detector = None
        self.fallback_reason: str | None = None

    def get(self, cfg):
        if self.detector is None:
            self.detector, self.fallback_reason = self.make(cfg, self.loads)
        return self.detector

    def drop(self) -> None:
        """The model's memory goes (its owner has no more sources to detect)."""
        self.detector = None


def detect_all(cfg, sources: tuple[str, ...], prompts: tuple[str, ...],
               video_ranges: dict[str, tuple[tuple[float, float], ...]] | None = None,
               cache: DetectionCache | None = None, made: Made | None = None,
               on_source=None, looks: dict[str, Look] | None = None,
               threads: int | None = None) -> tuple[dict, DetectionInfo]:
    """Every source's subject with one detector (`made`: a batch passes the same one to every
    call, so a model loads once):
    stills once, videos at `keyframe_rate`
    over the spans of them that the timeline shows (seeking from one to the next). Images go
    to the detector in batches (CLIP: `batch_size` per forward pass, each held only as the
    model's input and a copy at most 512 px a side), and results come compacted (masks as PNG), so the detector's
    memory stays flat however long a clip is. Sources in `cache` are read from it, and the
    detector (a model load) is made only if one is not. `on_source(uri, compacted)` hears each
    source as soon as it is done, in `sources`' order: the first detected on its own, without
    waiting for a full batch, so that whoever waits for it can start. `looks` holds stills
    already looked at, which the cache was found not to hold; one made for another side is
    made again. `threads`: the model's CPU threads for this call (None: as it loaded)."""
    t0 = time.perf_counter()
    made = Made() if made is None else made
    loads_before = made.loads.count
    counter = ReadCounter()
    found: dict = {}
    passes = None
    reused: list[Detection] = []
    detected = []
    looks = looks or {}
    for uri in sources:
        if cards.is_card(uri):  # nothing on a card to find or keep clear of: no model is made for it
            found[uri] = CompactSubject.of(subjectless(cards.parse(uri).size or (64, 64)))
            if on_source:
                on_source(uri, found[uri])
            continue
        hit = cache.get(uri) if cache and uri not in looks else None
        if hit is not None:
            found[uri] = hit.value
            reused.append(hit)
            if on_source:
                on_source(uri, hit.value)
            continue
        if passes is None:
            passes = _Passes(made.get(cfg), prompts, found, on_source)
            if threads is not None:
                made.detector.threads(threads)
        detected.append(uri)
        if video_ranges and uri in video_ranges:
            found[uri] = []
            for t, img in keyframes(uri, video_ranges[uri], cfg.keyframe_rate, counter):
                passes.add(uri, t, img, find_faces(img) if cfg.faces else ())
        else:
            found[uri] = None  # keeps the sources' order; filled when its pass runs
            side = still_side(cfg, made.detector.side)
            seen = looks.get(uri)
            if seen is None or seen.side != side:
                seen = look(cfg, uri, side, counter)
            passes.add(uri, None, seen.image, seen.faces, seen.size)
        passes.source_added(uri)
    if passes is not None:
        passes.flush()
    for uri in detected if cache else ():
        cache.put(uri, Detection(found[uri], made.detector.name, made.fallback_reason))
    if made.detector is not None:
        name, reason = made.detector.name, made.fallback_reason
    elif reused:  # every source was cached: the detector that made the entries (one key for all)
        name, reason = reused[0].detector, reused[0].fallback_reason
    else:
        name, reason = resolve_kind(cfg)[0], None
    return found, DetectionInfo(detector=name, fallback_reason=reason, detections_reused=len(reused),
                                device=made.detector.device if made.detector else None,
                                clip_loads=made.loads.count - loads_before,
                                seconds=round(time.perf_counter() - t0, 3), bytes_read=counter.bytes)


class _Passes:
    """Images on their way to the detector's forward passes, `batch` at a time, and the
    sources whose images are all in, told to `on_source` when their pass has run: the first
    source at once, on its own, so that whoever waits for it can start."""

    def __init__(self, detector, prompts, found: dict, on_source):
        self.detector, self.prompts, self.found, self.on_source = detector, prompts, found, on_source
        self.pending: list = []  # (uri, seconds or None for a still, prepared image, faces, full size)
        self.added: list[str] = []  # sources whose images are all pending or detected
        self.heard = False

    def add(self, uri, t, img, faces, full=None) -> None:
        self.pending.append((uri, t, self.detector.prepare(img), faces, full))
        if len(self.pending) >= self.detector.batch:
            self.flush()

    def source_added(self, uri: str) -> None:
        self.added.append(uri)
        if self.on_source and not self.heard:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        subjects = self.detector.detect_prepared([p for _, _, p, _, _ in pending], self.prompts) if pending else []
        for (uri, t, _, heads, full), subject in zip(pending, subjects):
            subject = replace(subject, faces=heads)
            if full is not None:  # found on a smaller copy of the still: in its own pixels
                subject = subject.at_size(full)
            if t is None:
                self.found[uri] = CompactSubject.of(subject)
            else:
                self.found[uri].append((t, CompactSubject.of(subject)))
        for uri in self.added if self.on_source else ():
            self.on_source(uri, self.found[uri])
            self.heard = True
        self.added.clear()


def expand(compacted: dict) -> dict[str, Subject | Keyframes]:
    return {k: [(t, c.subject()) for t, c in v] if isinstance(v, list) else v.subject() for k, v in compacted.items()}


class DetectorActor:
    """Holds the detector's process: in a render it is the only one that may import torch.
    The driver wraps it with ray.remote so that it can ask for a GPU where there is one. It
    keeps its detector between calls: a batch's rows go through one model load."""

    def __init__(self):
        self.made = Made(self._make)
        self.on_load = None  # the current call's

    @property
    def loads(self) -> LoadCounter:
        return self.made.loads

    def _make(self, cfg, loads: LoadCounter):
        before = loads.count
        made = make_detector(cfg, loads)
        if self.on_load is not None and loads.count > before:
            self.on_load(loads.count - before)
        return made

    def detect(self, cfg, sources, prompts, video_ranges=None, cache=None,
               on_load=None) -> tuple[dict, DetectionInfo]:
        """`on_load(loads)` hears a model load at once, before the model is used."""
        self.on_load = on_load
        return detect_all(cfg, sources, prompts, video_ranges, cache, self.made)
