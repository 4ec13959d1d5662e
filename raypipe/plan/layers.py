"""A job's `layers` and its segments' captions, planned: each layer checked, drawn where it is
text, and timed in global frames; then handed to the segments it is over."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from fractions import Fraction

from omegaconf import DictConfig

from raypipe.config import LayerCfg
from raypipe.errors import JobError
from raypipe.frames.captions import Caption
from raypipe.frames.layers import ANCHORS, ANIMATIONS, LAYER_TYPES, CaptionLayer, Layer, Motion
from raypipe.plan.seconds import number, to_frame

log = logging.getLogger("raypipe")

_DEFAULTS = {f.name: f.default for f in fields(LayerCfg) if f.default is not MISSING}
# Keys some layer types read and others do not: set on another type, a key is a mistake.
_TYPED = {key for kind in LAYER_TYPES.values() for key in kind.keys}


@dataclass(frozen=True)
class Readers:
    """How planning reads a layer's file: `size(uri)` an image's (width, height), `probe(uri)`
    a video's MediaInfo (the planner's own, so a clip both a segment and a layer show is
    probed once)."""

    size: Callable
    probe: Callable


def caption_layer(index: int, caption: Caption, start: int, end: int, fps: Fraction) -> Layer:
    """Segment `index`'s caption, over the segment's frames, fading in and out."""
    style = caption.style
    return Layer(f"job.segments[{index}].caption", CaptionLayer(caption), start, end, fps, style.position,
                 enter=Motion("fade", style.fade_in), leave=Motion("fade", style.fade_out))


def plan_layers(cfgs, bounds: list[int], width: int, height: int, fps: Fraction,
                read: Readers) -> tuple[Layer, ...]:
    """The job's layers, in order; `bounds` are the segments' first frames and the video's end.
    One that starts after the video's end (a template's rows make videos of many lengths) is
    left out, with a warning line."""
    planned = (_layer(f"job.layers[{i}]", cfg, bounds, width, height, fps, read) for i, cfg in enumerate(cfgs))
    return tuple(layer for layer in planned if layer is not None)


def _layer(where: str, cfg: DictConfig, bounds: list[int], width: int, height: int, fps: Fraction,
           read: Readers) -> Layer | None:
    kind = LAYER_TYPES.get(cfg.type)
    if kind is None:
        raise JobError(f"{where}.type", f"unknown layer type {cfg.type!r} (known: {', '.join(LAYER_TYPES)})")
    for key in sorted(_TYPED - set(kind.keys)):
        if cfg[key] != _DEFAULTS[key]:
            owners = [name for name, k in LAYER_TYPES.items() if key in k.keys]
            raise JobError(f"{where}.{key}", f"applies to {' and '.join(owners)} layers, and this one is {cfg.type}")
    if cfg.position not in (*ANCHORS, "auto"):
        raise JobError(f"{where}.position", f"unknown position {cfg.position!r} (known: {', '.join(ANCHORS)}, auto)")
    if len(cfg.offset) != 2:
        raise JobError(f"{where}.offset", f"must be [x, y] (got {list(cfg.offset)})")
    offset = tuple(float(number(v, f"{where}.offset")) for v in cfg.offset)
    if not 0 <= number(cfg.opacity, f"{where}.opacity") <= 1:
        raise JobError(f"{where}.opacity", f"must be in 0..1 (got {cfg.opacity})")
    if number(cfg.margin, f"{where}.margin") < 0:
        raise JobError(f"{where}.margin", f"must be >= 0 (got {cfg.margin})")
    if cfg.avoid not in (None, "subject"):
        raise JobError(f"{where}.avoid", f"must be subject or null (got {cfg.avoid!r})")
    start, end = _span(where, cfg, bounds, fps)
    enter, leave = _motion(f"{where}.in", cfg["in"]), _motion(f"{where}.out", cfg["out"])
    shown = float((end - start) / fps)
    if (enter.seconds if enter else 0) + (leave.seconds if leave else 0) > shown + 1e-9:
        raise JobError(f"{where}.in", f"its in and out take longer than the {shown:.3f} s it is on")
    if start >= bounds[-1]:
        log.warning("%s: starts at %.2f s, after the video's end (%.2f s): not drawn", where, float(start / fps),
                    float(bounds[-1] / fps))
        return None
    return Layer(where, kind.make(cfg, where, width, height, read), start, min(end, bounds[-1]), fps,
                 cfg.position, offset, float(cfg.margin), float(cfg.opacity), cfg.avoid == "subject", enter, leave)


def _span(where: str, cfg: DictConfig, bounds: list[int], fps: Fraction) -> tuple[int, int]:
    """Its global frames [start, end) as asked: from the video's start, or from segment N's
    (counted from the end where N < 0); past the video's end where it runs on (cut there)."""
    base, limit = 0, bounds[-1]
    if cfg.segment is not None:
        n = len(bounds) - 1
        if not -n <= cfg.segment < n:
            raise JobError(f"{where}.segment", f"the job has no segment {cfg.segment} (it has {n}: 0..{n - 1}, "
                                               "or -1 for the last)")
        base, limit = bounds[cfg.segment % n], bounds[cfg.segment % n + 1]
    start = number(cfg.start, f"{where}.start")
    if start < 0:
        raise JobError(f"{where}.start", f"must be >= 0 seconds (got {cfg.start})")
    first = base + to_frame(start, fps)
    if cfg.length is None:
        if first >= limit and cfg.segment is not None:
            raise JobError(f"{where}.start", f"{cfg.start} s is past the end of segment {cfg.segment}")
        return first, max(limit, first + 1)
    length = number(cfg.length, f"{where}.length")
    if length <= 0:
        raise JobError(f"{where}.length", f"must be > 0 seconds, or null to the end (got {cfg.length})")
    return first, max(base + to_frame(start + length, fps), first + 1)


def _motion(where: str, cfg: DictConfig | None) -> Motion | None:
    if cfg is None:
        return None
    if cfg.type not in ANIMATIONS:
        raise JobError(f"{where}.type", f"unknown animation {cfg.type!r} (known: {', '.join(ANIMATIONS)})")
    seconds = number(cfg.duration, f"{where}.duration")
    if seconds < 0:
        raise JobError(f"{where}.duration", f"must be >= 0 seconds (got {cfg.duration})")
    return Motion(cfg.type, float(seconds))


def over(layers: tuple[Layer, ...], start: int, end: int) -> tuple[Layer, ...]:
    """Those on during global frames [start, end), in order."""
    return tuple(layer for layer in layers if layer.start < end and start < layer.end)
