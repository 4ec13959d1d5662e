"""The detector's settings: what each means to the code that loads a model, and the checks
that need neither torch nor Ray, so that a bad detector fails before any work."""
from __future__ import annotations

import os

from raypipe.errors import JobError

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
    if not 0 < cfg.keyframe_rate <= 60:
        raise JobError("detector.keyframe_rate", f"must be > 0 and <= 60 per second (got {cfg.keyframe_rate})")
    if cfg.track_smoothing < 0:
        raise JobError("detector.track_smoothing", f"must be >= 0 seconds (got {cfg.track_smoothing})")
    if cfg.kind != "clip":  # files the user named that are missing are typos, fallback or not
        return
    if cfg.model_config and not os.path.isfile(cfg.model_config):
        raise JobError("detector.model_config", f"no such file: {cfg.model_config}")
    if cfg.pretrained and is_checkpoint_path(cfg.pretrained) and not os.path.isfile(cfg.pretrained):
        raise JobError("detector.pretrained", f"no checkpoint file at {cfg.pretrained}; {WEIGHTS_HINT}")
