"""Contact sheets: images in a grid, each with a caption line under it. The detection sheet
draws what the detector found on each source: the box (green), the mask's outline (yellow),
the faces (magenta), the score and the detector that ran. `annotate` and `grid` are pure;
`detection_sheet` reads the sources."""
from __future__ import annotations

import bisect
import functools
import os

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from raypipe.detection.detections import Detections, Subject
from raypipe.media import ReadCounter, load_image
from raypipe.media.video import VideoSource, sample_times
from raypipe.plan.timeline import Plan

BOX = (60, 220, 90)  # RGB
OUTLINE = (255, 210, 40)
FACE = (235, 70, 200)


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=13)


def annotate(image: np.ndarray, subject: Subject, width: int) -> np.ndarray:
    """The image scaled to `width`, with the subject's box, mask outline and faces drawn on it."""
    h, w = image.shape[:2]
    scale = width / w
    thumb = cv2.resize(image, (width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(subject.mask, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_LINEAR)
    contours, _ = cv2.findContours((mask >= 128).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(thumb, contours, -1, OUTLINE, 2, cv2.LINE_AA)
    sx, sy = thumb.shape[1] / subject.source_size[0], thumb.shape[0] / subject.source_size[1]
    for box, colour in [(subject.box, BOX), *((face, FACE) for face in subject.faces)]:
        x0, y0, x1, y1 = box
        cv2.rectangle(thumb, (round(x0 * sx), round(y0 * sy)), (round(x1 * sx), round(y1 * sy)), colour, 2, cv2.LINE_AA)
    return thumb


def grid(tiles: list[tuple[np.ndarray, str]], columns: int = 4, gap: int = 8) -> np.ndarray:
    """Tiles (RGB images of one width) in rows, each with its caption below, on dark grey."""
    if not tiles:
        raise ValueError("nothing to lay out")
    width = max(t.shape[1] for t, _ in tiles)
    line = 18
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    heights = [max(t.shape[0] for t, _ in row) + line for row in rows]
    out = Image.new("RGB", (gap + columns * (width + gap), gap + sum(h + gap for h in heights)), (32, 32, 32))
    draw, y = ImageDraw.Draw(out), gap
    for row, h in zip(rows, heights):
        for i, (tile, caption) in enumerate(row):
            x = gap + i * (width + gap)
            out.paste(Image.fromarray(tile), (x, y))
            text = caption
            while draw.textlength(text, font=_font()) > width and len(text) > 1:
                text = text[:-2] + "…"
            draw.text((x, y + tile.shape[0] + 2), text, fill=(235, 235, 235), font=_font())
        y += h + gap
    return np.asarray(out)


SHEET_TILE = 320  # pixels wide, per source or keyframe
SHEET_KEYFRAMES = 6  # at most, per video source


def _name(uri: str) -> str:
    return uri if uri.startswith("sample:") else os.path.basename(uri.rstrip("/"))


def near_keys(times: list[float], keys: list[float], within: float, n: int) -> list[float]:
    """Up to `n` of `times` (sorted), spread out: those less than `within` seconds after a
    key frame where there are such, so that a tile decodes a few frames, not most of a GOP."""
    close = [t for t in times if (i := bisect.bisect_right(keys, t + 1e-4)) and t - keys[i - 1] < within]
    picks = close or times
    return picks[::max(1, -(-len(picks) // n))]


def detection_sheet(plan: Plan, detections: Detections, detector: str, keyframe_rate: float,
                    counter: ReadCounter | None = None) -> np.ndarray:
    """Each still, and up to SHEET_KEYFRAMES of the frames detection sampled of each video
    (over the spans the timeline shows), with the box and mask outline that the effects use
    (a video's: its smoothed track), the score and the detector. `counter` gets the bytes
    read from storage."""
    ranges, tiles = plan.video_ranges(), []
    for uri in plan.sources:
        track = detections.track(uri)
        if uri in ranges:
            with VideoSource(uri, counter) as v:
                at = near_keys(sample_times(ranges[uri], keyframe_rate), v.keyframe_times(),
                                       1 / keyframe_rate, SHEET_KEYFRAMES)
                shots = [(f" at {t:.1f} s", img, track.at(t)) for t, img in zip(at, v.on_screen(at))]
        else:
            # Twice the tile: the tile is as wide as a portrait photo's shorter side.
            shots = [("", load_image(uri, counter, at_least=2 * SHEET_TILE), track.at(0.0))]
        for when, img, subject in shots:
            how = detector if subject.method == detector else f"{detector} ({subject.method})"
            how += f" + {len(subject.faces)} face{'s' * (len(subject.faces) != 1)}" if subject.faces else ""
            tiles.append((annotate(img, subject, SHEET_TILE), f"{_name(uri)}{when} · {subject.score:.2f} · {how}"))
    return grid(tiles)
