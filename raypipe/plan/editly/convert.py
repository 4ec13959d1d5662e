"""An Editly spec as a raypipe job: one segment per clip (a picture shown for part of its clip
splits it: black, the picture, black), timed so the video has Editly's frames, and the clip's
layers over it as job layers in global time."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from raypipe.errors import JobError
from raypipe.media import probe as probe_media
from raypipe.plan.editly import layers as drawn
from raypipe.plan.editly.fields import Fields, Once, number
from raypipe.plan.editly.origins import Origins
from raypipe.plan.editly.sound import Sound
from raypipe.plan.editly.spec import (
    CLIP_KEYS,
    GLOBAL_DEFAULTS,
    Clip,
    Layer,
    Media,
    Output,
    Palette,
    clip_seconds,
    cut,
    layers,
    load,
    merge,
    output,
    transition,
    unknown,
    unknown_defaults,
)
from raypipe.plan.editly.timing import ClipFrames, clip_frames, total_frames, window

# Editly's directional aliases: [1, 0] moves the picture left and brings the next in from the
# right, which is raypipe's wipe with its edge travelling left (editly.md, section 4).
DIRECTIONAL = {"directional-left": "left", "directional-right": "right", "directional-down": "up",
               "directional-up": "down"}
WIPES = {"wipeleft": "left", "wiperight": "right", "wipeup": "up", "wipedown": "down", "directionalwipe": "left"}
ZOOMS = ("crosszoom", "simplezoom", "dreamyzoom", "zoomincircles")
BLACK = {"source": "color:#000000", "effect": "static"}  # Editly's canvas where nothing covers it
_INTERPOLATION = re.compile(r"(\\*)\$\{")


@dataclass(frozen=True)
class Converted:
    fragment: dict  # {job: ..., render: ...}: a job file's content
    frames: int  # Editly's frame count, which the job renders
    output: Output
    origins: Origins  # the spec's path of each job key it wrote: what names an error at render


def literal(value):
    """The job's strings as OmegaConf reads them back as written: Editly draws `${price}` as it
    is, where OmegaConf would interpolate it (escaped `\\${`, a backslash before it doubled)."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", value)
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def _directional(where: str, params: dict) -> str:
    direction = params.get("direction") or [0, 1]
    if not isinstance(direction, list):
        raise JobError(f"{where}.transition.params.direction", f"must be [x, y] (got {direction!r})")
    x, y = ([number(v, f"{where}.transition.params.direction[{i}]") for i, v in enumerate(direction)] + [0, 0])[:2]
    return ("left" if x > 0 else "right") if x else ("up" if y > 0 else "down")


class Transitions:
    """Editly's transition names as raypipe's, one warning line per name it draws otherwise."""

    def __init__(self, once: Once):
        self.once = once

    def map(self, where: str, name: str, params: dict) -> tuple[str, dict]:
        key = name.lower()
        if key == "fade":
            return "crossfade", {}
        if key in DIRECTIONAL:
            return "wipe", {"direction": DIRECTIONAL[key]}
        if key == "directional":
            return "wipe", {"direction": _directional(where, params)}
        if key in WIPES:
            return "wipe", {"direction": WIPES[key]}
        if key == "fadecolor":
            return "fade_black", {}
        nearest = "zoom_through" if key in ZOOMS else "cut" if key == "dummy" else "crossfade"
        self.once.warn(f"transition {key}", "%s.transition.name: %s has no raypipe equivalent; drawn as %s", where,
                       name, nearest)
        return nearest, {}


CUT = ("cut", {})


@dataclass(frozen=True)
class Place:
    """A clip on the timeline: its frames, and the transitions raypipe draws into it and out
    of it, as (type, params)."""

    clip: Clip
    frames: ClipFrames
    entering: tuple[str, dict]  # the transition before it; CUT where there is none
    leaving: tuple[str, dict]

    @property
    def blended_in(self) -> bool:
        return self.entering[0] != "cut"


@dataclass(frozen=True)
class Carried:
    """A layer's clip frames [k0, k1) as its clip's transitions carry it (Editly draws a clip's
    layers into the clip's own frame, so they cut, fade and move with it), and how it comes in
    and goes out with them: (animation, frames), or None where it is not in a transition."""

    k0: int
    k1: int
    enter: tuple[str, int] | None
    leave: tuple[str, int] | None


def _motion(kind: tuple[str, dict]) -> str:
    """The layer animation that moves a layer as the transition moves its picture."""
    return f"slide_{kind[1]['direction']}" if kind[0] == "wipe" else "fade"


def carried(p: Place, k0: int, k1: int) -> Carried:
    """A cut ends the clip before's layers and begins this one's where raypipe cuts (the end of
    the overlap); a fade through black takes them out over its first half and in over its
    second; a blend takes them out (in) over the overlap, as it does their picture."""
    n, lead, blend = p.frames.frames, p.frames.lead, p.frames.blend
    enter = leave = None
    if lead:
        k0 = max(k0, {"cut": lead, "fade_black": lead // 2}.get(p.entering[0], 0))
        if p.entering[0] != "cut" and k0 < lead:
            enter = (_motion(p.entering), lead - k0)
    if blend:
        end = n - blend
        k1 = min(k1, end + blend // 2) if p.leaving[0] == "fade_black" else k1
        if p.leaving[0] != "cut" and k1 > end:
            leave = (_motion(p.leaving), k1 - end)
    return Carried(k0, k1, enter, leave)


def convert(path: str | Path, probe=probe_media, width: int | None = None, height: int | None = None) -> Converted:
    """The job for the spec at `path`; `probe` reads a video's duration, size and rate. `width`
    and `height` (a render's size overrides) stand for the spec's own: Editly sizes text from the
    output's size, so the job is made as if the spec had said them."""
    path = Path(path).expanduser()
    spec = load(path)
    spec.update({k: v for k, v in (("width", width), ("height", height)) if v is not None})
    once = Once()
    if "customOutputArgs" in spec:
        once.warn("customOutputArgs", "customOutputArgs: ignored; raypipe encodes an MP4 with render.codec, "
                  "render.crf and render.preset")
    base = path.absolute().parent
    unknown_defaults(spec, once)
    defaults = merge(GLOBAL_DEFAULTS, Fields("", spec).mapping("defaults"))
    palette, media = Palette(), Media(probe)
    clips = []
    for i, written in enumerate(spec["clips"]):
        where = f"clips[{i}]"
        if not isinstance(written, dict):
            raise JobError(where, "a clip is an object with layers")
        unknown(where, written, CLIP_KEYS, "a clip", once)
        found = layers(where, written, defaults, i, palette, base, once)
        name, asked, params = transition(where, written, defaults, once)
        clips.append(Clip(where, i, clip_seconds(where, written, found, defaults, media), bool(written.get("duration")),
                          name, asked, params, found))
    video = next((x for c in clips for x in c.layers if x.type == "video"), None)
    out = output(spec, media.info(video.where, video.props["path"]) if video else None)
    frames = clip_frames([c.seconds for c in clips], [c.transition_seconds for c in clips], out.fps)
    kinds, mapper = [], Transitions(once)
    for c, f in zip(clips, frames):
        kinds.append(mapper.map(c.where, c.transition, c.transition_params) if f.blend else CUT)
    places = [Place(c, f, kinds[i - 1] if i else CUT, kinds[i]) for i, (c, f) in enumerate(zip(clips, frames))]
    sound = Sound(spec, base, clips, frames, out.fps, media, once)
    segments, job_layers, origins = [], [], {}
    for p in places:
        for seg in _segments(p, kinds[p.clip.index], out, media, palette, once, sound):
            origins.update(_segment_origins(f"job.segments[{len(segments)}]", seg, p.clip))
            segments.append(seg)
        for layer, cfg in _layers(p, out, drawn.Fonts(once), palette, media):
            origins.update(_layer_origins(f"job.layers[{len(job_layers)}]", layer))
            job_layers.append(cfg)
    job = {"name": path.stem, "segments": segments, "layers": job_layers, "audio": sound.job_audio()}
    fragment = {"job": literal(job), "render": {"width": out.width, "height": out.height, "fps": str(out.fps)}}
    return Converted(fragment, total_frames(frames), out, Origins(origins))


# A job layer's keys that hold one of the spec layer's values, by the spec's key.
LAYER_ORIGINS = {"source": "path", "text": "text", "font": "fontPath", "start": "start", "length": "stop",
                 "width": "width", "height": "height", "position": "position", "offset": "position"}


def _layer_origins(key: str, layer) -> dict[str, str]:
    """The job layer at `key` and those of its keys that the spec's layer wrote."""
    return {key: layer.where, **{f"{key}.{k}": layer.path(v) for k, v in LAYER_ORIGINS.items() if v in layer.props}}


def _segment_origins(key: str, seg: dict, clip: Clip) -> dict[str, str]:
    """The segment at `key`: the clip's first layer where it shows it (not the black around a
    picture shown for part of its clip), else the clip; its time and transition the clip's."""
    first = clip.layers[0]
    found = {key: clip.where, f"{key}.duration": f"{clip.where}.duration",
             f"{key}.transition": f"{clip.where}.transition"}
    if first.type in ("image", "video") and seg.get("source") == first.props.get("path"):
        found.update({key: first.where, f"{key}.source": first.path("path")})
    elif first.type not in ("image", "video") and drawn.is_picture(first):
        found[key] = first.where
    return found


def _seconds(frames: int, fps: Fraction) -> float:
    return float(Fraction(frames) / fps)


def _frames(layer, p: Place) -> tuple[int, int]:
    """The clip frames [k0, k1) a layer is drawn in, from its start and stop (Editly's: both
    within the clip)."""
    seconds = p.clip.seconds
    start, stop = layer.fraction("start", 0), layer.fraction("stop", seconds)
    if not 0 <= start < seconds:
        raise JobError(layer.path("start"), f"must be >= 0 and before the clip's end ({float(seconds):g} s; got "
                                            f"{float(start):g})")
    if not start < stop <= seconds:
        raise JobError(layer.path("stop"), f"must be after start and within the clip's {float(seconds):g} s")
    return window(start, stop, seconds, p.frames.frames)


def _segments(p: Place, kind: tuple[str, dict], out: Output, media: Media, palette: Palette, once: Once,
              sound: Sound) -> list[dict]:
    """The clip's segment. A picture with a start or stop is black outside its window and zooms
    over the window alone, as Editly draws it: black, the picture and black, cut, with the
    clip's transition on the last. (A video so is a layer over black: drawn.is_picture.)"""
    seg, first = _segment(p, kind, out, media, palette, once, sound), p.clip.layers[0]
    if not drawn.is_picture(first) or first.type == "video":
        return [seg]
    k0, k1 = _frames(first, p)
    lead, n = p.frames.lead, p.frames.frames
    if (k0, k1) == (0, n):
        return [seg]
    picture = {k: v for k, v in seg.items() if k not in ("duration", "transition")}
    spans = [(a, b, what) for a, b, what in ((lead, max(k0, lead), BLACK), (max(k0, lead), max(k1, lead), picture),
                                             (max(k1, lead), n, BLACK)) if b > a]
    parts = [{**what, "duration": _seconds(b - a, out.fps)} for a, b, what in spans]
    if "transition" in seg:
        if spans[-1][1] - spans[-1][0] < p.frames.blend:
            raise JobError(first.path("stop" if k1 < n else "start"),
                           f"its window (frames {k0} to {k1} of {n}) splits the clip's closing {p.frames.blend}-frame "
                           "transition, which raypipe draws from one picture")
        parts[-1]["transition"] = seg["transition"]
    return parts


def _segment(p: Place, kind: tuple[str, dict], out: Output, media: Media, palette: Palette, once: Once,
             sound: Sound) -> dict:
    first = p.clip.layers[0]
    seg: dict = {"duration": _seconds(p.frames.segment_frames, out.fps)}
    if not drawn.is_picture(first):  # nothing under its layers: Editly's canvas is black there
        seg.update(BLACK)
    elif first.type in ("image", "video"):
        seg["source"] = first.props["path"]
        seg["effect"], seg["params"] = drawn.effect(first, once)
    else:
        seg["source"], seg["effect"] = drawn.background(first, p.clip.index, palette), "static"
    if first.type == "video" and drawn.is_picture(first):
        seg.update(_video(p, first, out, media, sound))
    if kind[0] != "cut":
        seg["transition"] = {"type": kind[0], "duration": _seconds(p.frames.blend, out.fps), "params": kind[1]}
    return seg


def _video(p: Place, layer, out: Output, media: Media, sound: Sound) -> dict:
    """The clip's range and speed: a given duration retimes the cut to fill it (Editly's
    README; its master no longer does, a regression)."""
    info = media.info(layer.where, layer.props["path"])
    start, end = cut(layer, info)
    speed = (end - start) / p.clip.seconds
    if not 0 < speed <= 16:
        raise JobError(f"{p.clip.where}.duration", f"plays the cut at {float(speed):g}x; raypipe plays 0 to 16x")
    # Where the clip before cuts rather than blends, the clip's own frames under it are skipped.
    skipped = 0 if p.blended_in else p.frames.lead
    seg = {"start": float(start + speed * Fraction(skipped) / out.fps), "end": float(end), "speed": float(speed)}
    volume = sound.level(layer.where)
    if volume > 0:
        seg.update({"audio": "mix", "audio_volume": round(volume, 6)})
    return seg


def _layers(p: Place, out: Output, fonts, palette: Palette, media: Media) -> list[tuple[Layer, dict]]:
    """The clip's layers above its picture, each over the global frames Editly draws it in,
    beside the spec's layer it is."""
    found = []
    for layer in p.clip.layers[1:] if drawn.is_picture(p.clip.layers[0]) else p.clip.layers:
        if layer.type in ("audio", "detached-audio"):
            continue  # heard, not drawn: the job's audio (sound.py)
        k0, k1 = _frames(layer, p)
        if layer.type == "slide-in-text":  # revealed from 10% to 30% of its time, faded out by 90%
            span = k1 - k0
            k0, k1 = k0 + round(0.1 * span), k0 + round(0.9 * span)
        length = _seconds(k1 - k0, out.fps)
        cfg = drawn.video(layer, media, p.clip) if layer.type == "video" else \
            drawn.drawn(layer, out, fonts, palette, p.clip.index, length)
        if layer.type == "slide-in-text":
            cfg["in"] = {"type": "wipe", "duration": round(length / 4, 6)}
            cfg["out"] = {"type": "fade", "duration": round(length / 8, 6)}
        through = carried(p, k0, k1)
        if through.k0 >= through.k1:
            continue  # shown only where the transition shows the other clip
        if layer.type == "video" and through.k0 > k0:  # it has played under the clip before, as the picture does
            cfg["cut_from"] = round(cfg["cut_from"] + cfg["speed"] * _seconds(through.k0 - k0, out.fps), 6)
        found.append((layer, _timed(cfg, through, p, out.fps)))
    return found


def _timed(cfg: dict, through: Carried, p: Place, fps: Fraction) -> dict:
    """The layer over its global frames, in and out with its clip's transitions where it has no
    animation of its own there; its own shortened to fit where a cut shortens it."""
    length = _seconds(through.k1 - through.k0, fps)
    for key, motion in (("in", through.enter), ("out", through.leave)):
        if key not in cfg and motion is not None:
            cfg[key] = {"type": motion[0], "duration": _seconds(motion[1], fps)}
    taken = sum(cfg[key]["duration"] for key in ("in", "out") if key in cfg)
    if taken > length:
        for key in ("in", "out"):
            if key in cfg:
                # Rounded down: the two must fit the layer's time, which raypipe checks.
                cfg[key] = {**cfg[key], "duration": math.floor(cfg[key]["duration"] * length / taken * 1e6) / 1e6}
    return {**cfg, "start": _seconds(p.frames.first + through.k0, fps), "length": length}
