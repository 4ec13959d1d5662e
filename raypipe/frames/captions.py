"""Captions: text laid out once, on the driver, with real fonts; placed in each task away
from the subject.

Fonts are looked up with fontconfig, the way desktop applications find them. A character
the chosen font lacks is drawn with an installed font that has it; a character no
installed font has is an error before anything renders, never a tofu box in the video.
Layout (shaping, bidirectional text) is Pillow's, with libraqm where it is built in. The
driver draws each caption to the RGBA bitmap its segment places, so worker nodes need no
fonts at all.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import MISSING, dataclass, field, fields

import cv2
import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont, features

from raypipe.errors import CaptionError

# auto and the 9 anchors a layer has (raypipe.frames.layers.anchors); `auto` looks at all but the sides.
POSITIONS = ("auto", "bottom", "top", "center", "bottom_left", "bottom_right", "top_left", "top_right", "left", "right")
# Where `auto` looks, in order of preference: the usual subtitle place first.
_AUTO_ORDER = ("bottom", "top", "bottom_left", "bottom_right", "top_left", "top_right", "center")


def _fc(*args: str) -> str | None:
    exe = shutil.which(args[0])
    if exe is None:
        return None
    return subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=30).stdout


@functools.lru_cache(maxsize=32)
def resolve_font(font: str) -> str:
    """A font file for a path or an installed family name ("DejaVu Sans", "Noto Sans CJK JP:bold")."""
    if os.sep in font or font.lower().endswith((".ttf", ".otf", ".ttc")):
        path = os.path.expanduser(font)
        if not os.path.isfile(path):
            raise CaptionError(f"no font file at {font}")
        return path
    found = _fc("fc-match", "--format=%{file}\t%{family}", font)
    if found is None:
        raise CaptionError(f"cannot look up font {font!r}: fontconfig (fc-match) is not installed; "
                           "give a font file path")
    path, _, families = found.partition("\t")
    wanted = font.split(":")[0].strip().lower()
    # fc-match always answers with something; only a family of that name counts as found.
    if wanted and wanted not in [f.strip().lower() for f in families.split(",")]:
        installed = sorted({f.split(",")[0] for f in (_fc("fc-list", ":", "family") or "").split("\n") if f})
        raise CaptionError(f"no installed font named {font!r} (installed: {', '.join(installed[:12]) or 'none'})")
    return path


@functools.lru_cache(maxsize=64)
def _charset(path: str) -> tuple[tuple[int, int], ...] | None:
    """The code point ranges a font file covers, or None when fontconfig cannot say."""
    out = _fc("fc-query", "--format=%{charset}", path)
    if not out:
        return None
    ranges = []
    for part in out.split():
        lo, _, hi = part.partition("-")
        ranges.append((int(lo, 16), int(hi or lo, 16)))
    return tuple(ranges)


def _covers(path: str, ch: str) -> bool:
    ranges = _charset(path)
    return ranges is None or any(lo <= ord(ch) <= hi for lo, hi in ranges)


@functools.lru_cache(maxsize=256)
def _fallback_for(ch: str) -> str:
    listed = _fc("fc-list", "--format=%{file}\n", f":charset={ord(ch):x}") or ""
    files = sorted(f for f in listed.split("\n") if f)
    if not files:
        raise CaptionError(f"no installed font has a glyph for U+{ord(ch):04X} {ch!r}; install a font that covers it "
                           f"(for example fonts-noto-cjk for Chinese, Japanese and Korean)")
    regular = [f for f in files if "bold" not in f.lower() and "italic" not in f.lower() and "oblique" not in f.lower()]
    return (regular or files)[0]


def font_runs(text: str, font_path: str) -> list[tuple[str, str]]:
    """Split text into (run, font file) so each character is drawn by a font that has it."""
    runs: list[tuple[str, str]] = []
    for ch in text:
        path = font_path if ch.isspace() or _covers(font_path, ch) else _fallback_for(ch)
        if runs and runs[-1][1] == path:
            runs[-1] = (runs[-1][0] + ch, path)
        else:
            runs.append((ch, path))
    return runs


@dataclass(frozen=True, init=False)
class CaptionStyle:
    """How a caption (config.CaptionCfg) or a text layer's text is drawn and placed."""

    text: str
    font: str
    size: float  # fraction of the frame height
    color: str
    outline: float  # stroke width, fraction of the text size
    outline_color: str
    box: bool
    box_color: str
    box_opacity: float
    position: str
    margin: float  # fraction of the frame height
    fade_in: float
    fade_out: float
    align: str = "center"  # each line inside the block: left, center or right
    width: float | None = None  # a fraction of the frame's width the text wraps inside; None: 0.86 less the outline
    offset: tuple[float, float] = (0.0, 0.0)  # fractions of the frame from its position, x to the right, y up
    opacity: float = 1.0
    enter: tuple[str, float] | None = None  # its `in`: (animation, seconds); None: a fade of fade_in
    leave: tuple[str, float] | None = None  # its `out`; None: a fade of fade_out

    def __init__(self, *args, **values):
        """A dataclass's __init__, but for `in` and `out` ({type, duration}, as CaptionCfg
        has them), which no Python parameter can be named: they are `enter` and `leave`."""
        for key, name in (("in", "enter"), ("out", "leave")):
            if key in values:
                values[name] = values.pop(key)
            if isinstance(values.get(name), dict):
                values[name] = (values[name]["type"], float(values[name]["duration"]))
        names = [f.name for f in fields(CaptionStyle)]
        given = {**dict(zip(names, args)), **values}
        if set(given) - set(names) or len(args) > len(names):
            raise TypeError(f"CaptionStyle has no {', '.join(sorted(set(given) - set(names))) or 'more fields'}")
        for f in fields(CaptionStyle):
            value = given.get(f.name, f.default)
            if value is MISSING:
                raise TypeError(f"CaptionStyle needs {f.name}")
            object.__setattr__(self, f.name, tuple(value) if f.name == "offset" else value)


ALIGNS = ("left", "center", "right")


# The smallest text a caption shrinks to, to keep clear of a face or inside the frame: 2.5%
# of the frame height (27 px at 1080p), under half the default size, is still read at a
# glance, while a caption that needs less is too long to read in a shot anyway; and never
# under 14 px, below which the outline (8% of the size) rounds to one pixel and 4:2:0
# chroma smears it into the letters. A size the user sets lower than that is kept.
MIN_TEXT = 0.025
MIN_TEXT_PX = 14


def text_px(size: float, out_w: int, out_h: int) -> int:
    """Text `size` in pixels: a fraction of the frame's shorter side (its height in landscape),
    so the same text keeps its proportions in 16:9, 9:16 and 1:1, as Editly's does."""
    return max(8, round(size * min(out_w, out_h)))
SHRINK = 0.85  # each smaller size a caption tries: a few steps from the default to the floor


# The widths a caption is also wrapped to, as fractions of its full width: beside a face in
# the middle of the frame, about a third of it is left on either side.
COLUMNS = (1.0, 0.5, 0.3)


@dataclass(frozen=True)
class Variant:
    """One way to draw a caption: its text size and its lines (wrapped to a column of the
    frame), with the (height, width) of the bitmap they make."""

    text_px: int
    lines: tuple[str, ...]
    shape: tuple[int, int]


@dataclass(frozen=True)
class Caption:
    """A laid-out caption: its variants, at its size and at each smaller size it may shrink
    to, each wrapped to the full width and to narrower columns (largest size first, wider
    first; each inside the frame's margins), measured but not drawn. A variant is drawn when
    first asked for: `check_captions` draws the one each segment places on the driver before
    any task is sent, so it travels in the plan (PNG-encoded: a long caption at 1080p is
    1.2 MB raw, 150 KB so) and worker nodes need no fonts. Drawing all twenty of a long
    caption up front cost the demo a second."""

    style: CaptionStyle
    font: str  # the resolved primary font file
    variants: tuple[Variant, ...]
    # Variant -> PNG bytes: a memo, not part of what the caption is (nor of its cache key).
    drawn: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple(v.shape for v in self.variants)

    @property
    def text_px(self) -> tuple[int, ...]:
        return tuple(v.text_px for v in self.variants)

    def png(self, i: int) -> bytes:
        """Variant i drawn, PNG-encoded (drawn once)."""
        if i not in self.drawn:
            img = _draw(self.style, self.font, self.variants[i])
            self.drawn[i] = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA))[1].tobytes()
        return self.drawn[i]

    def bitmap(self, i: int = 0) -> np.ndarray:
        """Variant i as straight-alpha RGBA."""
        bgra = cv2.imdecode(np.frombuffer(self.png(i), np.uint8), cv2.IMREAD_UNCHANGED)
        return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)

    @property
    def rgba(self) -> np.ndarray:
        """The caption at its own size and full width."""
        return self.bitmap(0)

    def opacity(self, t: float, seconds: float) -> float:
        a = 1.0
        if self.style.fade_in > 0:
            a = min(a, t / self.style.fade_in)
        if self.style.fade_out > 0:
            a = min(a, (seconds - t) / self.style.fade_out)
        return min(max(a, 0.0), 1.0)

    def origins(self, out_w: int, out_h: int, shape: tuple[int, int] | None = None) -> dict[str, tuple[int, int]]:
        h, w = shape or self.shapes[0]
        m = round(self.style.margin * out_h)
        dx, dy = round(self.style.offset[0] * out_w), -round(self.style.offset[1] * out_h)
        xs = {"left": m + dx, "center": (out_w - w) // 2 + dx, "right": out_w - w - m + dx}
        ys = {"top": m + dy, "center": (out_h - h) // 2 + dy, "bottom": out_h - h - m + dy}
        return {
            "bottom": (xs["center"], ys["bottom"]), "top": (xs["center"], ys["top"]),
            "center": (xs["center"], ys["center"]),
            "bottom_left": (xs["left"], ys["bottom"]), "bottom_right": (xs["right"], ys["bottom"]),
            "top_left": (xs["left"], ys["top"]), "top_right": (xs["right"], ys["top"]),
            "left": (xs["left"], ys["center"]), "right": (xs["right"], ys["center"]),
        }

    def place(self, subject_boxes: list[tuple[float, float, float, float]], out_w: int, out_h: int,
              face_boxes: list[tuple[float, float, float, float]] = ()) -> tuple[int, tuple[int, int]]:
        """Which bitmap the caption is drawn with over the whole segment, and its origin.

        The first bitmap (largest text, then widest) at which a candidate position (the given
        one, or for `auto` each in turn) keeps clear of every face box wins, and of those
        positions the one covering least of the subject (earlier candidates win ties). Where
        none clears the faces, a given position is the user's choice: the caption is drawn
        there at its own size (the caller warns); for `auto`, a CaptionError."""
        names = _AUTO_ORDER if self.style.position == "auto" else (self.style.position,)
        for i, (h, w) in enumerate(self.shapes):
            origins = self.origins(out_w, out_h, (h, w))

            def overlap(name, boxes, origins=origins, w=w, h=h):  # bound: called in this iteration only
                x, y = origins[name]
                return sum(_intersection((x, y, x + w, y + h), b) for b in boxes)

            clear = [name for name in names if overlap(name, face_boxes) == 0]
            if clear:
                return i, origins[min(clear, key=lambda name: (round(overlap(name, subject_boxes)), names.index(name)))]
        if self.style.position != "auto":
            return 0, self.origins(out_w, out_h)[self.style.position]
        raise CaptionError(f"its {len(self.style.text)} characters cannot keep clear of the face in the shot, even at "
                           f"{self.text_px[-1]} px text at any position; shorten the text or lower size")


def _intersection(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _color(value: str, where: str) -> tuple[int, int, int]:
    try:
        return ImageColor.getrgb(value)[:3]
    except ValueError:
        raise CaptionError(f"{where}: unknown colour {value!r} (use a name like white or #ffcc00)") from None


def _wrap(text: str, width: float, measure) -> list[str]:
    lines = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = word if not line else f"{line} {word}"
            if line and measure(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def layout(style: CaptionStyle, out_w: int, out_h: int) -> Caption:
    """Lay the caption's text out for this output: at its size, and at each smaller one down
    to the floor it may shrink to, each in COLUMNS. Those that do not fit inside the frame's
    margins are left out; a CaptionError when none does."""
    if not style.text.strip():
        raise CaptionError("text: is empty")
    if style.width is not None and not 0 < style.width <= 1:
        raise CaptionError(f"width: must be in (0, 1] of the frame's width (got {style.width})")
    for name in ("color", "outline_color", "box_color"):
        _color(getattr(style, name), name)
    primary = resolve_font(style.font)
    px = text_px(style.size, out_w, out_h)
    floor = min(px, max(MIN_TEXT_PX, round(MIN_TEXT * min(out_w, out_h))))
    ladder = [px]
    while round(ladder[-1] * SHRINK) > floor:
        ladder.append(round(ladder[-1] * SHRINK))
    if ladder[-1] != floor:
        ladder.append(floor)
    m = round(style.margin * out_h)
    fits: dict[tuple, Variant] = {}  # a narrower column that breaks no line differently is one
    for p in ladder:
        fonts = _Fonts(primary, p)
        for column in COLUMNS:
            v = _measured(style, fonts, column, out_w - 2 * m, out_w)
            if v.shape[1] <= out_w - 2 * m and v.shape[0] <= out_h - 2 * m:
                fits.setdefault((v.text_px, v.lines), v)
    if not fits:
        raise CaptionError(f"its {len(style.text)} characters do not fit in the {out_w}x{out_h} frame even at "
                           f"{floor} px text; shorten the text or lower size or margin")
    return Caption(style, primary, tuple(fits.values()))


class _Fonts:
    """The caption's fonts at one text size: the primary, and those that draw what it lacks."""

    def __init__(self, primary: str, px: int):
        self.primary, self.px, self._loaded = primary, px, {}

    def __call__(self, path: str) -> ImageFont.FreeTypeFont:
        if path not in self._loaded:
            try:
                self._loaded[path] = ImageFont.truetype(path, self.px, layout_engine=ImageFont.Layout.RAQM
                                                        if features.check("raqm") else ImageFont.Layout.BASIC)
            except OSError as e:
                raise CaptionError(f"cannot load font {path}: {e}") from None
        return self._loaded[path]

    def measure(self, line: str) -> float:
        return sum(self(p).getlength(run) for run, p in font_runs(line, self.primary))


def _frame(style: CaptionStyle, px: int) -> tuple[int, int]:
    """The outline's and the box's padding around the text, in pixels."""
    return round(style.outline * px), round(0.35 * px) if style.box else 0


def _measured(style: CaptionStyle, fonts: _Fonts, column: float, room: int, out_w: int) -> Variant:
    """The text at the fonts' size, wrapped to a `column` of the frame's width (`room`
    between the margins), and the size of its bitmap."""
    stroke, pad = _frame(style, fonts.px)
    # The box and outline inside the margins too, where a narrow frame's margins are wide; inside
    # its width as a text layer's, where it has one.
    full = 0.86 * out_w - 2 * stroke if style.width is None else style.width * out_w - 2 * (stroke + pad)
    return _wrapped(style, fonts, column * min(full, room - 2 * (stroke + pad)))


def _wrapped(style: CaptionStyle, fonts: _Fonts, width: float) -> Variant:
    """The text at the fonts' size, its lines at most `width` pixels of text, and its bitmap's size."""
    stroke, pad = _frame(style, fonts.px)
    lines = _wrap(style.text, width, fonts.measure)
    w = int(np.ceil(max(fonts.measure(line) for line in lines))) + 2 * (stroke + pad)
    h = _line_height(fonts) * len(lines) + 2 * (stroke + pad)
    return Variant(fonts.px, tuple(lines), (h, w))


def block(style: CaptionStyle, out_w: int, out_h: int, width: int) -> np.ndarray:
    """The text drawn once at its size, wrapped inside `width` pixels (its box and outline
    included): a text layer's straight-alpha RGBA bitmap. A CaptionError for a font that is
    missing or a character no font has."""
    if not style.text.strip():
        raise CaptionError("text: is empty")
    for name in ("color", "outline_color", "box_color"):
        _color(getattr(style, name), name)
    primary = resolve_font(style.font)
    fonts = _Fonts(primary, text_px(style.size, out_w, out_h))
    stroke, pad = _frame(style, fonts.px)
    return _draw(style, primary, _wrapped(style, fonts, max(1, width - 2 * (stroke + pad))))


def _line_height(fonts: _Fonts) -> int:
    ascent, descent = fonts(fonts.primary).getmetrics()
    return round((ascent + descent) * 1.15)


def _draw(style: CaptionStyle, primary: str, v: Variant) -> np.ndarray:
    fonts = _Fonts(primary, v.text_px)
    color, outline_color, box_color = (_color(style.color, "color"), _color(style.outline_color, "outline_color"),
                                       _color(style.box_color, "box_color"))
    stroke, pad = _frame(style, v.text_px)
    h, w = v.shape
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    if style.box:
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=pad, fill=(*box_color, round(255 * style.box_opacity)))
    for i, line in enumerate(v.lines):
        room = w - 2 * (stroke + pad) - fonts.measure(line)
        x = stroke + pad + room * ALIGNS.index(style.align) / 2
        y = stroke + pad + i * _line_height(fonts)
        for run, path in font_runs(line, primary):
            draw.text((x, y), run, font=fonts(path), fill=(*color, 255), stroke_width=stroke,
                      stroke_fill=(*outline_color, 255))
            x += fonts(path).getlength(run)
    return np.asarray(img, np.uint8).copy()


def overlay(frame: np.ndarray, rgba: np.ndarray, origin: tuple[int, int], opacity: float) -> np.ndarray:
    """The frame with a caption's bitmap drawn at origin (clipped to the frame), at this opacity."""
    out = frame.copy()
    return out if paint(out, *split(rgba), origin, opacity) else frame


def split(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A straight-alpha RGBA bitmap as paint takes it: its colours contiguous, its alpha as 0..1."""
    return np.ascontiguousarray(rgba[:, :, :3]), rgba[:, :, 3].astype(np.float32) * (1.0 / 255.0)


def paint(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, origin: tuple[int, int], opacity: float) -> bool:
    """overlay of a split bitmap, drawn into `frame` itself; False where nothing of it shows."""
    if opacity <= 0:
        return False
    x, y = origin
    h, w = rgb.shape[:2]
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return False
    src = rgb[y0 - y : y1 - y, x0 - x : x1 - x]
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    if opacity < 1:
        a = a * opacity
    if src.shape[:2] != rgb.shape[:2]:  # clipped: a view of part of it
        src, a = np.ascontiguousarray(src), np.ascontiguousarray(a)
    frame[y0:y1, x0:x1] = cv2.blendLinear(src, frame[y0:y1, x0:x1], a, 1.0 - a)
    return True
