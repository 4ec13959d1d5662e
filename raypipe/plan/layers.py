"""A job's `layers` and its segments' captions, planned: each layer checked, drawn where it is
text, and timed in global frames; then handed to the segments it is over."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields, replace
from fractions import Fraction

from omegaconf import DictConfig

from raypipe.config import LayerCfg
from raypipe.errors import JobError
from raypipe.frames.captions import ALIGNS, Caption
from raypipe.frames.layers import ANCHORS, ANIMATIONS, LAYER_TYPES, CaptionLayer, Layer, Motion
from raypipe.frames.layers.anchors import origin
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
    """Segment `index`'s caption, a text layer over the segment's frames: fading in and out,
    or coming and going as its `in` and `out` say."""
    where, style = f"job.segments[{index}].caption", caption.style
    if style.align not in ALIGNS:
        raise JobError(f"{where}.align", f"must be one of {', '.join(ALIGNS)} (got {style.align!r})")
    if len(style.offset) != 2:
        raise JobError(f"{where}.offset", f"must be [x, y] (got {list(style.offset)})")
    if not 0 <= number(style.opacity, f"{where}.opacity") <= 1:
        raise JobError(f"{where}.opacity", f"must be in 0..1 (got {style.opacity})")
    enter = _animation(f"{where}.in", *style.enter) if style.enter else Motion("fade", style.fade_in)
    leave = _animation(f"{where}.out", *style.leave) if style.leave else Motion("fade", style.fade_out)
    return Layer(where, CaptionLayer(caption), start, end, fps, style.position, opacity=float(style.opacity),
                 enter=enter, leave=leave, segments=(index,))


def plan_layers(cfgs, bounds: list[int], width: int, height: int, fps: Fraction, read: Readers,
                where: str = "job.layers", quiet: bool = False) -> tuple[Layer, ...]:
    """The layers of `cfgs` (the job's, or a variant's own at `where`), in order; `bounds` are
    the segments' first frames and the video's end. One that starts after the video's end (a
    template's rows make videos of many lengths) is left out, with a warning line unless
    `quiet` (a check before the render, which warns)."""
    planned = []
    for i, cfg in enumerate(cfgs):
        keys = read_layer(f"{where}[{i}]", cfg, len(bounds) - 1)
        start, asked = _span(keys, bounds, fps)
        if start < bounds[-1]:
            end = min(asked, bounds[-1])
            keys = _fitted(keys, float((end - start) / fps), end < asked, quiet)
            over = tuple(i for i in range(len(bounds) - 1) if bounds[i] < end and start < bounds[i + 1])
            planned.append(_layer(keys, start, end, over, width, height, fps, read, quiet))
        elif not quiet:
            log.warning("%s: starts at %.2f s, after the video's end (%.2f s): not drawn", keys.where,
                        float(start / fps), float(bounds[-1] / fps))
    return tuple(planned)


@dataclass(frozen=True)
class LayerKeys:
    """A layer's keys read and checked, as far as they can be before its video's frames and
    files are known: what `check_layers` finds wrong, before any work."""

    where: str
    cfg: DictConfig
    kind: type
    offset: tuple[float, float]
    start: Fraction
    length: Fraction | None
    enter: Motion | None
    leave: Motion | None


def check_layers(cfgs, where: str, segments: int) -> None:
    """Every layer of `cfgs` (at `where`, over a job of `segments` segments) read as planning
    reads it, reading no file: a bad key fails here under its own path."""
    for i, cfg in enumerate(cfgs):
        read_layer(f"{where}[{i}]", cfg, segments)


def read_layer(where: str, cfg: DictConfig, segments: int) -> LayerKeys:
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
    if cfg.segment is not None and not -segments <= cfg.segment < segments:
        raise JobError(f"{where}.segment", f"the job has no segment {cfg.segment} (it has {segments}: "
                                           f"0..{segments - 1}, or -1 for the last)")
    start = number(cfg.start, f"{where}.start")
    if start < 0:
        raise JobError(f"{where}.start", f"must be >= 0 seconds (got {cfg.start})")
    length = None if cfg.length is None else number(cfg.length, f"{where}.length")
    if length is not None and length <= 0:
        raise JobError(f"{where}.length", f"must be > 0 seconds, or null to the end (got {cfg.length})")
    return LayerKeys(where, cfg, kind, offset, start, length, _motion(f"{where}.in", cfg["in"]),
                     _motion(f"{where}.out", cfg["out"]))


def _layer(keys: LayerKeys, start: int, end: int, over: tuple[int, ...], width: int, height: int, fps: Fraction,
           read: Readers, quiet: bool) -> Layer:
    where, cfg, enter, leave = keys.where, keys.cfg, keys.enter, keys.leave
    layer = Layer(where, keys.kind.make(cfg, where, width, height, read), start, end, fps, cfg.position,
                  keys.offset, float(cfg.margin), float(cfg.opacity), cfg.avoid == "subject", enter, leave, over)
    if cfg.position != "auto" and not quiet:
        h, w = layer.kind.shapes[0]
        x, y = origin(cfg.position, (h, w), width, height, layer.margin, layer.offset)
        if x + w <= 0 or x >= width or y + h <= 0 or y >= height:
            log.warning("%s: its offset %s puts it outside the %dx%d frame, at (%d, %d): nothing of it shows",
                        where, list(keys.offset), width, height, x, y)
    return layer


def _fitted(keys: LayerKeys, shown: float, cut: bool, quiet: bool) -> LayerKeys:
    """Its keys with its `in` and `out` fitting the `shown` seconds it is on. Where the video's
    end `cut` its length short (a template's short row), they are shortened in proportion, with
    a warning line; where its own start and length (or its segment's end, which `length: null`
    asks for) leave too little, it fails."""
    enter, leave = keys.enter, keys.leave
    asked = (enter.seconds if enter else 0) + (leave.seconds if leave else 0)
    if asked <= shown + 1e-9:
        return keys
    if not cut:
        raise JobError(f"{keys.where}.in", f"its in and out take longer than the {shown:.3f} s it is on")
    enter, leave = (None if m is None else Motion(m.type, m.seconds * shown / asked) for m in (enter, leave))
    if not quiet:
        log.warning("%s: on for %.2f s to the end, less than its in and out: they are shortened to %.2f s and "
                    "%.2f s", keys.where, shown, enter.seconds if enter else 0, leave.seconds if leave else 0)
    return replace(keys, enter=enter, leave=leave)


def _span(keys: LayerKeys, bounds: list[int], fps: Fraction) -> tuple[int, int]:
    """Its global frames [start, end) as asked: from the video's start, or from segment N's
    (counted from the end where N < 0); past the video's end where it runs on (cut there)."""
    cfg, base, limit = keys.cfg, 0, bounds[-1]
    if cfg.segment is not None:
        n = len(bounds) - 1
        base, limit = bounds[cfg.segment % n], bounds[cfg.segment % n + 1]
    first = base + to_frame(keys.start, fps)
    if keys.length is None:
        if first >= limit and cfg.segment is not None:
            raise JobError(f"{keys.where}.start", f"{cfg.start} s is past the end of segment {cfg.segment}")
        return first, max(limit, first + 1)
    return first, max(base + to_frame(keys.start + keys.length, fps), first + 1)


def _motion(where: str, cfg: DictConfig | None) -> Motion | None:
    return None if cfg is None else _animation(where, cfg.type, cfg.duration)


def _animation(where: str, kind: str, duration) -> Motion:
    if kind not in ANIMATIONS:
        raise JobError(f"{where}.type", f"unknown animation {kind!r} (known: {', '.join(ANIMATIONS)})")
    seconds = number(duration, f"{where}.duration")
    if seconds < 0:
        raise JobError(f"{where}.duration", f"must be >= 0 seconds (got {duration})")
    return Motion(kind, float(seconds))


def over(layers: tuple[Layer, ...], start: int, end: int) -> tuple[Layer, ...]:
    """Those on during global frames [start, end), in order."""
    return tuple(layer for layer in layers if layer.start < end and start < layer.end)


def told_as(plan, name: Callable[[str], str]):
    """The plan with each layer's key, which its errors and warnings give, as `name(key)` says,
    as the rest of the video's errors name theirs (a batch's row: `row 3 (id elm): job.layers[0]`)."""
    layers = {id(x): replace(x, where=name(x.where))
              for x in (*plan.layers, *(x for seg in plan.segments for x in seg.layers))}
    return replace(plan, layers=tuple(layers[id(x)] for x in plan.layers),
                   segments=tuple(replace(seg, layers=tuple(layers[id(x)] for x in seg.layers))
                                  for seg in plan.segments))
