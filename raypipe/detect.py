"""Detection, once per render: one detector, one pass over every distinct source.

This module stays free of torch: the CLIP detector lives in `raypipe.clip` and is imported
only when `detector.kind` is clip, inside the detector actor's process.
"""
from __future__ import annotations

import logging
import os
import sys
import time

from raypipe.detections import CompactSubject, Subject
from raypipe.saliency import detect_saliency
from raypipe.sources import load_image
from raypipe.timeline import JobError

log = logging.getLogger(__name__)

KINDS = ("clip", "saliency")
FALLBACKS = (None, "saliency")
METHODS = ("clearclip", "maskclip", "sclip")


WEIGHTS_HINT = ("supply a local checkpoint (detector.pretrained=/path/to/open_clip_pytorch_model.bin) "
                "or use detector=saliency")


def is_checkpoint_path(pretrained: str) -> bool:
    """A local checkpoint file rather than an open_clip pretrained tag."""
    return os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))


def validate(cfg) -> None:
    """Config checks that need neither torch nor Ray, so a bad detector fails before any work."""
    if cfg.kind not in KINDS:
        raise JobError("detector.kind", f"unknown detector {cfg.kind!r} (known: {', '.join(KINDS)})")
    if cfg.fallback not in FALLBACKS:
        raise JobError("detector.fallback", f"must be null or saliency (got {cfg.fallback!r})")
    if cfg.method not in METHODS:
        raise JobError("detector.method", f"unknown method {cfg.method!r} (known: {', '.join(METHODS)})")
    if cfg.image_size is not None and (len(cfg.image_size) != 2 or min(cfg.image_size) <= 0):
        raise JobError("detector.image_size", f"must be [height, width] (got {list(cfg.image_size)})")
    if cfg.kind != "clip" or cfg.fallback == "saliency":
        return
    if cfg.model_config and not os.path.isfile(cfg.model_config):
        raise JobError("detector.model_config", f"no such file: {cfg.model_config}")
    if cfg.pretrained and is_checkpoint_path(cfg.pretrained) and not os.path.isfile(cfg.pretrained):
        raise JobError("detector.pretrained", f"no checkpoint file at {cfg.pretrained}; {WEIGHTS_HINT}")


class SaliencyDetector:
    name = "saliency"

    def detect(self, rgb):
        return detect_saliency(rgb)


def make_detector(cfg, prompts: tuple[str, ...]):
    """The configured detector, and why it is not the configured one when it fell back."""
    if cfg.kind == "saliency":
        return SaliencyDetector(), None
    from raypipe.clip import ClipDetector, WeightsUnavailable

    try:
        return ClipDetector(cfg, prompts), None
    except WeightsUnavailable as e:
        if cfg.fallback != "saliency":
            raise
        log.warning("CLIP UNAVAILABLE, FALLING BACK TO SALIENCY: %s", e)
        return SaliencyDetector(), str(e)


def clip_loads() -> int:
    clip = sys.modules.get("raypipe.clip")
    return clip.LOADS if clip else 0


def detect_all(cfg, sources: tuple[str, ...], prompts: tuple[str, ...]) -> tuple[dict[str, Subject], dict]:
    t0 = time.perf_counter()
    loads_before = clip_loads()
    detector, fallback_reason = make_detector(cfg, prompts)
    subjects = {}
    for uri in sources:
        img = load_image(uri)
        subject = detector.detect(img)
        if subject is None:
            log.warning("CLIP found no subject in %s: using saliency for it", uri)
            subject = detect_saliency(img, method="saliency (no CLIP subject)")
        subjects[uri] = subject
    info = {
        "detector": detector.name,
        "fallback_reason": fallback_reason,
        "clip_loads": clip_loads() - loads_before,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return subjects, info


class DetectorActor:
    """Holds the detector's process: in a render it is the only one that may import torch.
    The driver wraps it with ray.remote so that it can ask for a GPU where there is one."""

    def detect(self, cfg, sources, prompts) -> tuple[dict[str, CompactSubject], dict]:
        subjects, info = detect_all(cfg, sources, prompts)
        return {k: CompactSubject.of(s) for k, s in subjects.items()}, info
