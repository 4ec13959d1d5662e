"""Editly's layers as raypipe's: a clip's first full-frame layer is its segment's picture (a
photo with Ken Burns, a clip, a card), the rest are job layers over it, placed and sized in
the fractions Editly computes (editly.md, sections 6 to 8)."""
from __future__ import annotations

from pathlib import Path

from PIL import ImageFont

from raypipe.errors import JobError
from raypipe.plan.editly.fields import Color, Fields, Once, color
from raypipe.plan.editly.spec import Clip, Layer, Media, Output, Palette, cut

# Editly's named positions: (left, top) as fractions of the frame, and the object's origin.
POSITIONS = {
    "center": (0.5, 0.5, "center", "center"), "top": (0.5, 0.05, "center", "top"),
    "bottom": (0.5, 0.95, "center", "bottom"), "top-left": (0.05, 0.05, "left", "top"),
    "top-right": (0.95, 0.05, "right", "top"), "center-left": (0.05, 0.5, "left", "center"),
    "center-right": (0.95, 0.5, "right", "center"), "bottom-left": (0.05, 0.95, "left", "bottom"),
    "bottom-right": (0.95, 0.95, "right", "bottom"),
}
_FRACTION = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}
RADIAL_MIDDLE = 0.9  # Editly's radial gradient grows from 0.6 to 1.2 of the longer side
BACKGROUNDS = ("image", "video", "fill-color", "linear-gradient", "radial-gradient")
DEFAULT_FONT = "DejaVu Sans"
POSITION_NAMES = ", ".join(POSITIONS)


def is_picture(layer: Layer) -> bool:
    """Whether a clip's first layer is its segment's picture: a full-frame one. A video in a
    box smaller than the frame (a mosaic's tile), or shown for part of its clip, is a video
    layer over black."""
    boxed = layer.type == "video" and (min(layer.number("width") or 1, layer.number("height") or 1) < 1
                                       or bool(layer.props.get("start")) or layer.props.get("stop") is not None)
    return layer.type in BACKGROUNDS and not boxed


def place(position, where: str) -> dict:
    """raypipe's anchor, margin and offset that put the layer's origin where Editly puts it
    (section 7): the anchor is the origin's side, the offset its distance from there."""
    if position is None or isinstance(position, str):
        if (position or "center") not in POSITIONS:
            raise JobError(f"{where}.position", f"must be one of {POSITION_NAMES} or {{x, y, originX, originY}} "
                                                f"(got {position!r})")
        left, top, ox, oy = POSITIONS[position or "center"]
    elif isinstance(position, dict):
        given = Fields(f"{where}.position", position)
        x, y = given.number("x"), given.number("y")
        left, ox = (x, given.choice("originX", ("left", "center", "right", None), None) or "left") \
            if x is not None else (0.5, "center")
        top, oy = (y, given.choice("originY", ("top", "center", "bottom", None), None) or "top") \
            if y is not None else (0.5, "center")
    else:
        raise JobError(f"{where}.position", f"must be a name or {{x, y, originX, originY}} (got {position!r})")
    row = {"top": "top", "center": "", "bottom": "bottom"}[oy]
    col = {"left": "left", "center": "", "right": "right"}[ox]
    anchor = "_".join(p for p in (row, col) if p) or "center"
    return {"position": anchor, "margin": 0.0,
            "offset": [round(left - _FRACTION[ox], 6), round(_FRACTION[oy] - top, 6)]}


class Fonts:
    """A fontPath when it is a font that loads, else raypipe's default with one warning line per
    path (Editly's canvas falls back so too)."""

    def __init__(self, once: Once):
        self.once = once

    def font(self, layer: Layer) -> dict:
        path = layer.string("fontPath")
        if not path:
            return {}
        if not Path(path).is_file():
            self.once.warn(f"font {path}", "%s.fontPath: %s is missing; drawn in %s", layer.where, path,
                           DEFAULT_FONT)
            return {}
        try:
            ImageFont.truetype(path, 10)
        except OSError as e:
            self.once.warn(f"font {path}", "%s.fontPath: %s is not a font raypipe can load (%s); drawn in %s",
                           layer.where, path, e, DEFAULT_FONT)
            return {}
        return {"font": path}


def _colors(layer: Layer, palette: Palette, clip: int) -> list[Color]:
    """A gradient's two colours: Editly's random pair unless it names exactly two."""
    pair = layer.props.get("colors")
    pair = pair if isinstance(pair, list) and len(pair) == 2 else palette.gradient(clip)
    return [color(c, f"{layer.path('colors')}[{i}]") for i, c in enumerate(pair)]


def background(layer: Layer, clip: int, palette: Palette) -> str:
    """A full-frame colour layer as a card source; a radial gradient at the middle of Editly's
    growth (its radius runs from 0.6 to 1.2 of the frame's longer side over the layer's time)."""
    if layer.type == "fill-color":
        return f"color:{layer.color('color', palette.color(clip)).hex}"
    a, b = (c.hex for c in _colors(layer, palette, clip))
    if layer.type == "radial-gradient":
        return f"radial:{a},{b},{RADIAL_MIDDLE}"
    # Editly's rect runs from halfway at the top-left corner to the second colour at the centre.
    return f"gradient:{a},{b},135"


def see_through(layer: Layer, palette: Palette, clip: int) -> str:
    """A gradient over other layers as a box's fill, its colours' alpha kept: linear as the
    card's, radial as the card's."""
    a, b = (c.hex + f"{round(c.alpha * 255):02x}" for c in _colors(layer, palette, clip))
    return f"radial:{a},{b},{RADIAL_MIDDLE}" if layer.type == "radial-gradient" else f"gradient:{a},{b},135"


def _text(layer: Layer, fonts: Fonts, size: float, text_color: Color) -> dict:
    """What every Editly text layer has: its text (a literal: see convert.literal), font, size
    (a fraction of the frame's shorter side, as Editly's: `px / min(width, height)`) and colour."""
    return {"type": "text", "text": layer.text("text"), **fonts.font(layer), "size": size, "color": text_color.hex,
            "outline": 0.0}


def title(layer: Layer, out: Output, fonts: Fonts) -> dict:
    low = min(out.width, out.height)
    return {**_text(layer, fonts, round(low * 0.1) / low,
                    layer.color("textColor", "#ffffff")),
            "align": "center", "width": 0.8, **place(layer.props.get("position"), layer.where)}


def subtitle(layer: Layer, out: Output, fonts: Fonts, seconds: float) -> dict:
    pad = 0.05 * min(out.width, out.height)
    box = layer.color("backgroundColor", "rgba(0,0,0,0.3)")
    speed = layer.number("speed", 1, above=0)
    return {**_text(layer, fonts, 1 / 20, layer.color("textColor", "#ffffff")),
            "box": True, "box_color": box.hex, "box_opacity": round(box.alpha, 4), "align": "left",
            "width": round((out.width - 2 * pad) / out.width, 6), "position": "bottom_left", "margin": 0.0,
            "offset": [round(pad / out.width, 6), round(pad / out.height, 6)],
            # Editly's easeOutExpo over the layer's progress is all but done a fifth of the way in.
            "in": {"type": "fade", "duration": round(seconds * 0.2 / speed, 6)}}


def news_title(layer: Layer, out: Output, fonts: Fonts, seconds: float) -> dict:
    low = min(out.width, out.height)
    speed = layer.number("speed", 1, above=0)
    return {**_text(layer, fonts, round(0.05 * low) / low, layer.color("textColor", "#ffffff")),
            "box": True, "box_color": layer.color("backgroundColor", "#d02a42").hex,
            "box_opacity": 1.0, "align": "left", "position": "top_left", "margin": 0.0,
            "offset": [round(0.07 * low / out.width, 6), -0.08],
            "in": {"type": "slide_right", "duration": round(seconds / (3 * speed), 6)}}


def slide_in_text(layer: Layer, out: Output, fonts: Fonts) -> dict:
    # `color` is Editly 0.14's key; textColor its later one.
    text_color = layer.color("color" if layer.props.get("color") else "textColor", "#ffffff")
    # Editly's: of the width, whatever the aspect; raypipe draws text up to half the shorter side.
    px = round(out.width * layer.number("fontSize", 0.05, above=0, high=0.5 * min(out.width, out.height) / out.width))
    return {**_text(layer, fonts, px / min(out.width, out.height), text_color),
            "align": "left", **place(layer.props.get("position"), layer.where)}


def image_overlay(layer: Layer) -> dict:
    # Editly scales to `width` (or, without it, `height`; with neither, the frame's width).
    width, height = layer.number("width", above=0, high=1), layer.number("height", above=0, high=1)
    return {"type": "image", "source": layer.props["path"], "width": width or 1.0,
            "height": 1.0 if width else height or 1.0,
            **place(layer.props.get("position"), layer.where)}


def video(layer: Layer, media: Media, clip: Clip) -> dict:
    """A video over another layer (section 6): its box `width` x `height` of the frame, with
    its origin (`originX`, `originY`; left and top by default) at (`left`, `top`); its cut
    retimed to fill a clip given a duration (Editly's README, and v0.14), else at its own pace."""
    p = layer.props
    start, end = cut(layer, media.info(layer.where, p["path"]))
    speed = (end - start) / clip.seconds if clip.timed else 1
    if not 0 < speed <= 16:
        raise JobError(f"{clip.where}.duration", f"plays {layer.where}'s cut at {float(speed):g}x; raypipe plays 0 "
                                                 "to 16x")
    origin = {"x": layer.number("left") or 0.0, "y": layer.number("top") or 0.0, "originX": p.get("originX") or "left",
              "originY": p.get("originY") or "top"}
    return {"type": "video", "source": p["path"], "cut_from": float(start), "cut_to": float(end),
            "speed": float(speed), "fit": p.get("resizeMode") or "contain-blur",
            "width": layer.number("width", 1.0, above=0, high=1),
            "height": layer.number("height", 1.0, above=0, high=1),
            **place(origin, layer.where)}


def full_frame(layer: Layer, palette: Palette, clip: int) -> dict:
    """A picture over the clip's first layer: an image fitted to the frame, or a box of colour."""
    if layer.type == "image":
        return {"type": "image", "source": layer.props["path"], "width": 1.0, "height": 1.0, "position": "center"}
    if layer.type == "fill-color":
        c = layer.color("color", palette.color(clip))
        return {"type": "box", "color": c.hex, "width": 1.0, "height": 1.0, "position": "center", "opacity": c.alpha}
    if layer.type in ("linear-gradient", "radial-gradient"):
        return {"type": "box", "color": see_through(layer, palette, clip), "width": 1.0, "height": 1.0,
                "position": "center"}
    raise JobError(f"{layer.where}.type", f"{layer.type} over another layer is not supported: raypipe shows one "
                                          "picture or clip per segment, under its layers")


def drawn(layer: Layer, out: Output, fonts: Fonts, palette: Palette, clip: int, seconds: float) -> dict:
    """A layer over the clip's picture, as a job layer without its time."""
    if layer.type == "title":
        return title(layer, out, fonts)
    if layer.type == "subtitle":
        return subtitle(layer, out, fonts, seconds)
    if layer.type == "news-title":
        return news_title(layer, out, fonts, seconds)
    if layer.type == "slide-in-text":
        return slide_in_text(layer, out, fonts)
    if layer.type == "image-overlay":
        return image_overlay(layer)
    return full_frame(layer, palette, clip)


def ken_burns(layer: Layer) -> tuple[str, dict]:
    """An image's zoomDirection and zoomAmount as raypipe's effect, framed on the subject."""
    direction = layer.props.get("zoomDirection", "in")
    # raypipe's zoom is 1 + amount (1.3 + amount for a pan), at least 1.
    amount = layer.number("zoomAmount", 0.1, low=0 if direction in ("in", "out") else -0.3)
    if direction in ("in", "out"):
        return "ken_burns", {"direction": direction, "zoom": round(1 + amount, 6), "easing": "linear"}
    if direction in ("left", "right"):
        # Editly's `right` moves the picture right: the view starts at its right side.
        return "pan", {"start": direction, "zoom": round(1.3 + amount, 6), "easing": "linear"}
    return "static", {}


def fit(layer: Layer, once: Once) -> tuple[str, dict]:
    """resizeMode as framing: cover crops on the subject, contain(-blur) keeps the subject
    whole with a black (blurred) fill; stretch, which raypipe does not do, is a crop."""
    mode = layer.props.get("resizeMode") or "contain-blur"
    if mode == "contain-blur":
        return "reframe", {"fill": "blur"}
    if mode == "contain":
        return "reframe", {"fill": "black"}
    if mode == "stretch":
        once.warn("stretch", "%s.resizeMode: stretch is drawn as cover (a crop on the subject): raypipe does not "
                             "distort", layer.where)
    return "static", {}


def effect(layer: Layer, once: Once) -> tuple[str, dict]:
    if layer.type == "image" and layer.props.get("zoomDirection", "in") is not None:
        return ken_burns(layer)
    return fit(layer, once)
