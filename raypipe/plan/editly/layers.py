"""Editly's layers as raypipe's: a clip's first full-frame layer is its segment's picture (a
photo with Ken Burns, a clip, a card), the rest are job layers over it, placed and sized in
the fractions Editly computes (editly.md, sections 6 to 8)."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageColor

from raypipe.errors import JobError
from raypipe.plan.editly.spec import Clip, Layer, Media, Output, Palette, cut

log = logging.getLogger("raypipe")

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
RESIZE_MODES = ("contain", "cover", "stretch", "contain-blur")
DEFAULT_FONT = "DejaVu Sans"
_RGBA = re.compile(r"rgba\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\)")


@dataclass(frozen=True)
class Color:
    hex: str  # #rrggbb
    alpha: float  # 0..1


def color(value, where: str) -> Color:
    """A CSS colour as Editly's canvas reads it (names, #rgb, #rrggbbaa, rgb(a), hsl)."""
    text = str(value).strip()
    if (m := _RGBA.fullmatch(text)):
        rgb, alpha = tuple(round(float(v)) for v in m.groups()[:3]), float(m.group(4))
    else:
        try:
            *rgb, a = ImageColor.getcolor(text, "RGBA")
        except ValueError:
            raise JobError(where, f"{value!r} is not a colour") from None
        alpha = a / 255
    return Color("#" + bytes(max(0, min(255, c)) for c in rgb).hex(), alpha)


def is_picture(layer: Layer) -> bool:
    """Whether a clip's first layer is its segment's picture: a full-frame one. A video in a
    box smaller than the frame (a mosaic's tile) is a video layer over black."""
    p = layer.props
    boxed = layer.type == "video" and min(float(p.get("width") or 1), float(p.get("height") or 1)) < 1
    return layer.type in BACKGROUNDS and not boxed


def place(position, where: str) -> dict:
    """raypipe's anchor, margin and offset that put the layer's origin where Editly puts it
    (section 7): the anchor is the origin's side, the offset its distance from there."""
    if position is None or isinstance(position, str):
        left, top, ox, oy = POSITIONS.get(position or "center", POSITIONS["center"])
    elif isinstance(position, dict):
        left, ox = (float(position["x"]), position.get("originX") or "left") if position.get("x") is not None \
            else (0.5, "center")
        top, oy = (float(position["y"]), position.get("originY") or "top") if position.get("y") is not None \
            else (0.5, "center")
        if ox not in ("left", "center", "right") or oy not in ("top", "center", "bottom"):
            raise JobError(f"{where}.position", f"unknown origin {ox!r}, {oy!r}")
    else:
        raise JobError(f"{where}.position", f"must be a name or {{x, y, originX, originY}} (got {position!r})")
    row = {"top": "top", "center": "", "bottom": "bottom"}[oy]
    col = {"left": "left", "center": "", "right": "right"}[ox]
    anchor = "_".join(p for p in (row, col) if p) or "center"
    return {"position": anchor, "margin": 0.0,
            "offset": [round(left - _FRACTION[ox], 6), round(_FRACTION[oy] - top, 6)]}


class Once:
    """Warning lines, each said once per spec however many layers or clips it is true of."""

    def __init__(self):
        self.said: set[str] = set()

    def warn(self, key: str, message: str, *args) -> None:
        if key not in self.said:
            self.said.add(key)
            log.warning(message, *args)


class Fonts:
    """A fontPath when the file is there, else raypipe's default with one warning line per path."""

    def __init__(self, once: Once):
        self.once = once

    def font(self, layer: Layer) -> dict:
        path = layer.props.get("fontPath")
        if not path:
            return {}
        if Path(path).is_file():
            return {"font": path}
        self.once.warn(f"font {path}", "%s.fontPath: %s is missing; drawn in %s", layer.where, path, DEFAULT_FONT)
        return {}


def _colors(layer: Layer, palette: Palette, clip: int) -> list[Color]:
    """A gradient's two colours: Editly's random pair unless it names exactly two."""
    pair = layer.props.get("colors")
    pair = pair if isinstance(pair, list) and len(pair) == 2 else palette.gradient(clip)
    return [color(c, f"{layer.where}.colors") for c in pair]


def background(layer: Layer, clip: int, palette: Palette) -> str:
    """A full-frame colour layer as a card source; a radial gradient at the middle of Editly's
    growth (its radius runs from 0.6 to 1.2 of the frame's longer side over the layer's time)."""
    props = layer.props
    if layer.type == "fill-color":
        return f"color:{color(props.get('color') or palette.color(clip), layer.where + '.color').hex}"
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


def title(layer: Layer, out: Output, fonts: Fonts) -> dict:
    p = layer.props
    return {"type": "text", "text": str(p.get("text", "")), **fonts.font(layer),
            "size": round(min(out.width, out.height) * 0.1) / out.height,
            "color": color(p.get("textColor", "#ffffff"), layer.where + ".textColor").hex, "outline": 0.0,
            "align": "center", "width": 0.8, **place(p.get("position"), layer.where)}


def subtitle(layer: Layer, out: Output, fonts: Fonts, seconds: float) -> dict:
    p = layer.props
    pad = 0.05 * min(out.width, out.height)
    box = color(p.get("backgroundColor", "rgba(0,0,0,0.3)"), layer.where + ".backgroundColor")
    speed = float(p.get("speed", 1) or 1)
    return {"type": "text", "text": str(p.get("text", "")), **fonts.font(layer),
            "size": min(out.width, out.height) / 20 / out.height,
            "color": color(p.get("textColor", "#ffffff"), layer.where + ".textColor").hex, "outline": 0.0,
            "box": True, "box_color": box.hex, "box_opacity": round(box.alpha, 4), "align": "left",
            "width": round((out.width - 2 * pad) / out.width, 6), "position": "bottom_left", "margin": 0.0,
            "offset": [round(pad / out.width, 6), round(pad / out.height, 6)],
            # Editly's easeOutExpo over the layer's progress is all but done a fifth of the way in.
            "in": {"type": "fade", "duration": round(seconds * 0.2 / speed, 6)}}


def news_title(layer: Layer, out: Output, fonts: Fonts, seconds: float) -> dict:
    p = layer.props
    low = min(out.width, out.height)
    speed = float(p.get("speed", 1) or 1)
    return {"type": "text", "text": str(p.get("text", "")), **fonts.font(layer),
            "size": round(0.05 * low) / out.height,
            "color": color(p.get("textColor", "#ffffff"), layer.where + ".textColor").hex, "outline": 0.0,
            "box": True, "box_color": color(p.get("backgroundColor", "#d02a42"), layer.where + ".backgroundColor").hex,
            "box_opacity": 1.0, "align": "left", "position": "top_left", "margin": 0.0,
            "offset": [round(0.07 * low / out.width, 6), -0.08],
            "in": {"type": "slide_right", "duration": round(seconds / (3 * speed), 6)}}


def slide_in_text(layer: Layer, out: Output, fonts: Fonts) -> dict:
    p = layer.props
    text_color = p.get("color") or p.get("textColor", "#ffffff")
    return {"type": "text", "text": str(p.get("text", "")), **fonts.font(layer),
            "size": round(out.width * float(p.get("fontSize", 0.05))) / out.height,
            "color": color(text_color, layer.where + ".textColor").hex, "outline": 0.0, "align": "left",
            **place(p.get("position"), layer.where)}


def image_overlay(layer: Layer) -> dict:
    p = layer.props
    # Editly scales to `width` (or, without it, `height`; with neither, the frame's width).
    width = float(p["width"]) if p.get("width") else 1.0
    height = float(p["height"]) if p.get("height") and not p.get("width") else 1.0
    return {"type": "image", "source": p["path"], "width": width, "height": height,
            **place(p.get("position"), layer.where)}


def video(layer: Layer, media: Media, clip: Clip) -> dict:
    """A video over another layer (section 6): its box `width` x `height` of the frame, with
    its origin (`originX`, `originY`; left and top by default) at (`left`, `top`); its cut
    retimed to fill a clip given a duration (Editly's README, and v0.14), else at its own pace."""
    p = layer.props
    if not p.get("path"):
        raise JobError(f"{layer.where}.path", "a video layer needs a path")
    start, end = cut(layer.where, p, media.info(layer.where, p["path"]))
    speed = (end - start) / clip.seconds if clip.timed else 1
    if not 0 < speed <= 16:
        raise JobError(f"{clip.where}.duration", f"plays {layer.where}'s cut at {float(speed):g}x; raypipe plays 0 "
                                                 "to 16x")
    mode = p.get("resizeMode", "contain-blur")
    if mode not in RESIZE_MODES:
        raise JobError(f"{layer.where}.resizeMode", f"must be one of {', '.join(RESIZE_MODES)} (got {mode!r})")
    origin = {"x": float(p.get("left") or 0), "y": float(p.get("top") or 0), "originX": p.get("originX") or "left",
              "originY": p.get("originY") or "top"}
    return {"type": "video", "source": p["path"], "cut_from": float(start), "cut_to": float(end),
            "speed": float(speed), "fit": mode, "width": float(p.get("width") or 1),
            "height": float(p.get("height") or 1), **place(origin, layer.where)}


def full_frame(layer: Layer, palette: Palette, clip: int) -> dict:
    """A picture over the clip's first layer: an image fitted to the frame, or a box of colour."""
    if layer.type == "image":
        return {"type": "image", "source": layer.props["path"], "width": 1.0, "height": 1.0, "position": "center"}
    if layer.type == "fill-color":
        c = color(layer.props.get("color") or palette.color(clip), layer.where + ".color")
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


def ken_burns(props: dict) -> tuple[str, dict]:
    """An image's zoomDirection and zoomAmount as raypipe's effect, framed on the subject."""
    direction = props.get("zoomDirection", "in")
    amount = float(props.get("zoomAmount", 0.1))
    if direction in ("in", "out"):
        return "ken_burns", {"direction": direction, "zoom": round(1 + amount, 6), "easing": "linear"}
    if direction in ("left", "right"):
        # Editly's `right` moves the picture right: the view starts at its right side.
        return "pan", {"start": direction, "zoom": round(1.3 + amount, 6), "easing": "linear"}
    return "static", {}


def fit(layer: Layer, once: Once) -> tuple[str, dict]:
    """resizeMode as framing: cover crops on the subject, contain(-blur) keeps the subject
    whole with a black (blurred) fill; stretch, which raypipe does not do, is a crop."""
    mode = layer.props.get("resizeMode", "contain-blur")
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
        return ken_burns(layer.props)
    return fit(layer, once)

