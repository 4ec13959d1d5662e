"""An Editly spec read as Editly reads it: JSON5, its defaults merged (lodash's deep merge,
where null overwrites), its layer aliases expanded, each clip's duration and transition
resolved, and the output's size and frame rate chosen (../shared/notes/editly.md, sections
2, 3, 6 and 10). Errors name the spec's own path: `clips[3].layers[0].type`."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import json5

from raypipe.errors import JobError, MediaError
from raypipe.media import MediaInfo
from raypipe.plan.editly.fields import Fields, Once, Reads

# The layer types raypipe draws, after Editly's aliases are expanded (pause, title-background).
SUPPORTED = ("image", "image-overlay", "video", "audio", "detached-audio", "title", "subtitle", "news-title",
             "slide-in-text", "fill-color", "linear-gradient", "radial-gradient")
ALIASES = ("title-background", "pause")
# Top-level keys that change nothing raypipe renders: where Editly writes, and its debugging.
IGNORED = ("outPath", "enableFfmpegLog", "verbose", "logTimes", "keepTmp", "ffmpegPath", "ffprobePath",
           "allowRemoteRequests")
# ffmpeg's output arguments: raypipe encodes its chunks itself, with render.codec, crf and preset.
WARNED = ("customOutputArgs",)
READ = ("clips", "defaults", "width", "height", "fps", "fast", "audioFilePath", "loopAudio", "keepSourceAudio",
        "clipsAudioVolume", "backgroundAudioVolume", "audioTracks", "audioNorm", "outputVolume")
GLOBAL_DEFAULTS = {"duration": 4, "transition": {"duration": 0.5, "name": "random"}}
# The keys Editly 0.14.2 knows (its index.d.ts, and what its sources read beside it: a text's
# fontFamily, subtitle's and news-title's delay and speed); any other is ignored, with a hint.
CLIP_KEYS = ("layers", "duration", "transition")
TRANSITION_KEYS = ("duration", "name", "audioOutCurve", "audioInCurve", "easing", "params")
DEFAULTS_KEYS = ("duration", "layer", "layerType", "transition")  # defaults.layer takes any layer's keys
_BASE = ("type", "start", "stop")
_TEXT = (*_BASE, "text", "textColor", "fontPath", "fontFamily")
_KEN_BURNS = ("zoomDirection", "zoomAmount")
LAYER_KEYS = {
    "video": (*_BASE, "path", "resizeMode", "cutFrom", "cutTo", "width", "height", "left", "top", "originX", "originY",
              "mixVolume"),
    "audio": (*_BASE, "path", "cutFrom", "cutTo", "mixVolume"),
    "detached-audio": (*_BASE, "path", "cutFrom", "cutTo", "mixVolume"),
    "image": (*_BASE, "path", "resizeMode", "duration", *_KEN_BURNS),
    "image-overlay": (*_BASE, "path", "position", "width", "height", *_KEN_BURNS),
    "title": (*_TEXT, "position", *_KEN_BURNS),
    "subtitle": (*_TEXT, "backgroundColor", "delay", "speed"),
    # Editly passes every other key of it on to its title.
    "title-background": (*_TEXT, "background", "position", *_KEN_BURNS),
    "news-title": (*_TEXT, "backgroundColor", "position", "delay", "speed"),
    "slide-in-text": (*_TEXT, "fontSize", "charSpacing", "color", "position"),
    "fill-color": (*_BASE, "color"),
    "pause": (*_BASE, "color"),
    "linear-gradient": (*_BASE, "colors"),
    "radial-gradient": (*_BASE, "colors"),
}
# The layers that draw or play a file, which must be there (URIs and sample: photographs aside).
FILES = ("image", "image-overlay", "video", "audio", "detached-audio")
TEXTS = ("title", "subtitle", "news-title", "slide-in-text")
# The URI schemes raypipe's storage reads (pyarrow.fs's); any other (http) is Editly's download.
STORAGE = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def merge(base, over):
    """lodash.merge: plain objects merge key by key, anything else (null too) replaces."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(base.get(key), value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else copy.deepcopy(value)
    return out


def is_spec(path) -> bool:
    """Whether a command line's argument names an Editly spec: a .json5 file, or a .json one
    with a clips list."""
    path = Path(path)
    if path.suffix == ".json5":
        return True
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return isinstance(json5.loads(path.read_text()).get("clips"), list)
    except (OSError, ValueError, AttributeError):
        return False


def load(path: Path) -> dict:
    """The spec as a dict; an error naming the file when it is not an Editly spec."""
    try:
        spec = json5.loads(path.read_text())
    except OSError as e:
        raise JobError(str(path), f"cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise JobError(str(path), f"JSON5 syntax error: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("clips"), list):
        raise JobError(str(path), "not an Editly spec: it has no clips list")
    for key in spec:
        if key not in READ and key not in IGNORED and key not in WARNED:
            raise JobError(key, "is not supported")
    if not spec["clips"]:
        raise JobError("clips", "is empty: a spec needs at least one clip")
    return spec


@dataclass(frozen=True)
class Layer(Reads):
    """One of a clip's layers after alias expansion and defaults: `where` is the path its values
    are read at, the layer as written (a title-background's title too) or its `background`."""

    where: str
    type: str
    props: dict


@dataclass(frozen=True)
class Clip:
    where: str
    index: int
    seconds: Fraction  # Editly's resolved duration
    timed: bool  # its duration is given: each of its videos plays its cut retimed to fill it
    transition: str | None  # the name at its end; None: none
    transition_seconds: Fraction  # as asked, before clamping
    transition_params: dict
    layers: tuple[Layer, ...]


def _expand(where: str, layer: dict, index: int, palette) -> list[tuple[str, str, dict]]:
    """Editly's aliases as the layers they stand for (`src/sources/index.ts`), each with the
    path its values are read at."""
    kind = layer.get("type")
    if kind == "pause":
        return [(where, "fill-color", {k: v for k, v in layer.items() if k != "type"})]
    if kind == "title-background":
        rest = {k: v for k, v in layer.items() if k not in ("type", "background")}
        background = layer.get("background") or {"type": palette.background(index)}
        if not isinstance(background, dict) or background.get("type") not in ("fill-color", "linear-gradient",
                                                                              "radial-gradient"):
            raise JobError(f"{where}.background", "must be a fill-color, linear-gradient or radial-gradient layer")
        return [(f"{where}.background", background["type"], {k: v for k, v in background.items() if k != "type"}),
                (where, "title", rest)]
    return [(where, kind, {k: v for k, v in layer.items() if k != "type"})]


def resolve(base: Path, value):
    """A file the spec names, from the spec's folder where it is relative (URIs, sample:
    photographs and what is no path as they are)."""
    if not isinstance(value, str) or not value or "://" in value or value.startswith("sample:"):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def existing(where: str, uri: str) -> str:
    """A file the spec names, there before any work starts (a storage URI or a sample:
    photograph is its reader's to find; a web URL, which Editly downloads, is refused here)."""
    scheme = uri.partition("://")[0].lower() if "://" in uri else None
    if scheme is not None and scheme not in STORAGE:
        raise JobError(where, f"{uri} is a {scheme} URL, which raypipe does not download: download it and give its "
                              "path, or put it where raypipe reads (s3://...)")
    if scheme is None and not uri.startswith("sample:") and not Path(uri).is_file():
        raise JobError(where, f"no such file: {uri}")
    return uri


def unknown(where: str, written: dict, known: tuple, what: str, once: Once) -> None:
    """Editly ignores a key it does not know; a typo deserves a hint."""
    for key in written:
        if key not in known:
            once.warn(f"key {where}.{key}", "%s.%s: not an Editly key of %s; ignored", where, key, what)


def unknown_defaults(spec: dict, once: Once) -> None:
    """The hint for a typo in `defaults`: its own keys, its transition's, and layerType's types
    and their keys."""
    given = Fields("", spec).mapping("defaults")
    unknown("defaults", given, DEFAULTS_KEYS, "defaults", once)
    unknown("defaults.transition", Fields("defaults", given).mapping("transition"), TRANSITION_KEYS,
            "a transition", once)
    by_type = Fields("defaults", given).mapping("layerType")
    unknown("defaults.layerType", by_type, tuple(LAYER_KEYS), "layerType (a layer type)", once)
    for kind, keys in LAYER_KEYS.items():
        unknown(f"defaults.layerType.{kind}", Fields("defaults.layerType", by_type).mapping(kind), keys, kind, once)


# Enumerated values, checked wherever a layer type has the key; null is the key's default.
CHOICES = {"zoomDirection": ("in", "out", "left", "right", None),
           "resizeMode": ("contain-blur", "contain", "cover", "stretch", None),
           "originX": ("left", "center", "right", None), "originY": ("top", "center", "bottom", None)}


def _read(layer: Layer, base: Path) -> Layer:
    """The layer with its files resolved and there, its text present and its enumerated values
    known: what can fail fails here, naming the spec's path."""
    props = dict(layer.props)
    for key in ("path", "fontPath"):
        if layer.string(key):
            props[key] = resolve(base, layer.string(key))
    if layer.type in FILES:
        if not props.get("path"):
            raise JobError(layer.path("path"), f"an {layer.type} layer needs a path")
        existing(layer.path("path"), props["path"])
    if layer.type in TEXTS and not layer.text("text"):
        raise JobError(layer.path("text"), "is empty: Editly asks for a text (\"Please specify a text\")")
    for key, allowed in CHOICES.items():
        if key in props and key in LAYER_KEYS[layer.type]:
            layer.choice(key, allowed, None)
    return Layer(layer.where, layer.type, props)


def layers(where: str, clip: dict, defaults: dict, index: int, palette, base: Path, once: Once) -> tuple[Layer, ...]:
    written = clip.get("layers")
    written = [written] if isinstance(written, dict) else written
    if not isinstance(written, list) or not written:
        raise JobError(f"{where}.layers", "a clip needs at least one layer")
    given = Fields("defaults", defaults)
    by_type = Fields("defaults.layerType", given.mapping("layerType"))
    out = []
    for j, layer in enumerate(written):
        at = f"{where}.layers[{j}]"
        if not isinstance(layer, dict) or "type" not in layer:
            raise JobError(at, "a layer needs a type")
        if layer["type"] not in SUPPORTED and layer["type"] not in ALIASES:
            raise JobError(f"{at}.type", f"{layer['type']} is not supported")
        unknown(at, layer, LAYER_KEYS[layer["type"]], layer["type"], once)
        for part, kind, props in _expand(at, layer, index, palette):
            merged = merge(merge(given.mapping("layer"), by_type.mapping(kind)), props)
            out.append(_read(Layer(part, kind, merged), base))
    return tuple(out)


def transition(where: str, clip: dict, defaults: dict, once: Once) -> tuple[str | None, Fraction, dict]:
    """(name, seconds as asked, params) at the clip's end: defaults.transition deep-merged under
    the clip's own; null on either side is no transition."""
    if "transition" in clip and clip["transition"] is None:
        return None, Fraction(0), {}
    own = Fields(where, clip).mapping("transition")
    unknown(f"{where}.transition", own, TRANSITION_KEYS, "a transition", once)
    asked = Fields(f"{where}.transition", merge(Fields("defaults", defaults).mapping("transition"), own)
                   if defaults.get("transition") is not None else own)
    if not asked.props:
        return None, Fraction(0), {}
    seconds = asked.fraction("duration", 0)
    if seconds < 0:
        raise JobError(asked.path("duration"), f"must be >= 0 seconds (got {float(seconds):g})")
    name = asked.string("name")
    if seconds > 0 and not name:
        raise JobError(asked.path("name"), "a transition with a duration needs a name")
    return (name or None), seconds, dict(asked.mapping("params"))


def cut(layer: Reads, info: MediaInfo) -> tuple[Fraction, Fraction]:
    """A video layer's (cutFrom, cutTo), clamped to the file as Editly clamps them."""
    length = Fraction(info.duration).limit_denominator(1_000_000)
    start = min(max(layer.fraction("cutFrom", 0), Fraction(0)), length)
    end = min(max(layer.fraction("cutTo", length), Fraction(0)), length)
    if not start < end:
        raise JobError(layer.path("cutTo"), f"must be after cutFrom ({float(start):g} s), within the file "
                                            f"({float(length):.2f} s)")
    return start, end


class Media:
    """Probes each file once, its failure naming the layer's path."""

    def __init__(self, probe):
        self.probe, self.found = probe, {}

    def info(self, where: str, uri: str) -> MediaInfo:
        if uri not in self.found:
            try:
                self.found[uri] = self.probe(uri)
            except MediaError as e:
                raise JobError(f"{where}.path", str(e)) from None
        return self.found[uri]


def clip_seconds(where: str, clip: dict, found: tuple[Layer, ...], defaults: dict, media: Media) -> Fraction:
    """Editly's order: a truthy duration, else the first video layer's cut, else defaults.duration."""
    if clip.get("duration"):
        seconds = Fields(where, clip).fraction("duration")
    else:
        video = next((x for x in found if x.type == "video"), None)
        if video is not None:
            start, end = cut(video, media.info(video.where, video.props["path"]))
            seconds = end - start
        else:
            seconds = Fields("defaults", defaults).fraction("duration")
    if seconds <= 0:
        raise JobError(f"{where}.duration", f"must be > 0 seconds (got {float(seconds):g})")
    return seconds


@dataclass(frozen=True)
class Output:
    width: int
    height: int
    fps: Fraction


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


def _fps(value) -> Fraction:
    try:
        fps = Fraction(str(value)) if not isinstance(value, float) else Fraction(value).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise JobError("fps", f"{value!r} is not a frame rate") from None
    if not 0 < fps <= 240:
        raise JobError("fps", f"must be > 0 and <= 240 (got {value})")
    return fps


def output(spec: dict, video: MediaInfo | None) -> Output:
    """Editly's size and rate (section 10), raised to even sizes where x264 needs them."""
    root = Fields("", spec)
    width, height = root.number("width"), root.number("height")
    if width and height:
        w, h = width, height
    elif video is not None:
        w, h = (width, width * video.height / video.width) if width else (video.width, video.height)
    else:
        w = h = width or 640.0
    if spec.get("fast"):
        aspect = w / h
        w, h, fps = 250 * math.sqrt(aspect), 250 / math.sqrt(aspect), Fraction(15)
    elif root.number("fps") is not None:
        fps = _fps(root.number("fps"))
    else:
        fps = _fps(video.fps) if video is not None else Fraction(25)
    return Output(_even(w), _even(h), fps)


class Palette:
    """Editly's random colours, picked the same way on every run: the clip's index chooses
    (`src/colors.ts`'s lists, first entries)."""

    COLORS = ("hsl(42, 100%, 50%)", "hsl(310, 34%, 37%)", "hsl(24, 100%, 50%)", "hsl(211, 38%, 74%)",
              "hsl(350, 100%, 37%)", "hsl(35, 52%, 59%)", "hsl(22, 11%, 45%)", "hsl(145, 100%, 24%)")
    GRADIENTS = (("#ff9aac", "#ffa875"), ("#cc2b5e", "#753a88"), ("#42275a", "#734b6d"), ("#bdc3c7", "#2c3e50"),
                 ("#de6262", "#ffb88c"), ("#eb3349", "#f45c43"), ("#dd5e89", "#f7bb97"), ("#56ab2f", "#a8e063"))
    BACKGROUNDS = ("radial-gradient", "linear-gradient", "fill-color")

    def background(self, index: int) -> str:
        return self.BACKGROUNDS[index % len(self.BACKGROUNDS)]

    def color(self, index: int) -> str:
        return self.COLORS[index % len(self.COLORS)]

    def gradient(self, index: int) -> tuple[str, str]:
        return self.GRADIENTS[index % len(self.GRADIENTS)]
