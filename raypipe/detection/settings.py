"""The detector's settings: what each means to the code that loads a model, and the checks
that need neither torch nor Ray, so that a bad detector fails before any work."""
from __future__ import annotations

import os
import time

import pyarrow.fs as pafs

from raypipe.errors import JobError, first_line
from raypipe.storage import resolve

KINDS = ("clip", "saliency")
FALLBACKS = (None, "saliency")
METHODS = ("clearclip", "maskclip", "sclip")


WEIGHTS_HINT = ("supply a checkpoint (detector.pretrained=/path/to/open_clip_pytorch_model.bin, or a URI "
                "such as s3://bucket/model.bin that every node of a cluster reads) or use detector=saliency")


def is_checkpoint_path(pretrained: str) -> bool:
    """A checkpoint file (a path or a URI) rather than an open_clip pretrained tag."""
    return "://" in pretrained or os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))


MISSING = "no such file"
SEEN_S = 30.0  # how long a URI's answer is kept: a batch's rows share one detector, and ask once
_seen: dict[str, tuple[float, tuple[int, int] | None]] = {}


def file_identity(value: str) -> tuple[int, int] | None:
    """(bytes, mtime in ns) of the file at a path or URI; None where there is none. A URI's
    answer is one request, kept for SEEN_S. Raises OSError (or ValueError: an unknown scheme)
    where it cannot be reached, which is never kept."""
    if "://" not in value:
        return (st.st_size, st.st_mtime_ns) if os.path.isfile(value) and (st := os.stat(value)) else None
    now = time.monotonic()
    if (kept := _seen.get(value)) is not None and now - kept[0] < SEEN_S:
        return kept[1]
    fs, path = resolve(value)
    info = fs.get_file_info(path)
    found = (info.size, info.mtime_ns) if info.type == pafs.FileType.File else None
    _seen[value] = (now, found)
    return found


def file_missing(value: str) -> str | None:
    """Why the file at a path or URI cannot be had (MISSING, or why it cannot be reached);
    None when it can."""
    try:
        return None if file_identity(value) is not None else MISSING
    except (OSError, ValueError) as e:  # no route, no credentials, an unknown scheme
        return f"cannot reach it ({first_line(e)})"


def checkpoint_missing(pretrained: str) -> str | None:
    """Why a checkpoint file cannot be loaded, with the hint; None when it may be."""
    why = file_missing(pretrained)
    if why is None:
        return None
    where = f"no checkpoint file at {pretrained}" if why == MISSING else f"checkpoint {pretrained}: {why}"
    return f"{where}; {WEIGHTS_HINT}"


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
    if cfg.model_config and (why := file_missing(cfg.model_config)):
        raise JobError("detector.model_config", f"{why}: {cfg.model_config}")
    if cfg.pretrained and is_checkpoint_path(cfg.pretrained) and (why := checkpoint_missing(cfg.pretrained)):
        raise JobError("detector.pretrained", why)
