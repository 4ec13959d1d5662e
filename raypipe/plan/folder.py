"""A folder of photos and clips as a job: `python -m raypipe render photos/`.

`plan_folder` is the planning, from what was measured of each file (its size, a clip's
length, whether a photo shows a face): the order, each segment's effect and duration, the
crossfades. `read_folder` measures the files. The job is written beside the video as a job
file, so that a user who wants more than the guess edits it and renders that.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from raypipe.detection.faces import find_faces
from raypipe.errors import ConfigError
from raypipe.media import is_video, load_image, normalize, probe
from raypipe.media.audio import duration as soundtrack_duration
from raypipe.media.video import VIDEO_EXTENSIONS

# What Pillow reads without a plugin.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
PHOTO_SECONDS = 2.5  # a photo's time on screen when there is no soundtrack to fit
CLIP_SECONDS = 5.0  # a clip plays its start, this long at most
# Where the clips alone outlast the soundtrack, the photos still get this long: the video
# runs past the music rather than flashing them by. It is at least two crossfades.
MIN_PHOTO_SECONDS = 1.0
CROSSFADE = 0.5
MOVES = ("ken_burns", "pan")  # photos with nothing else to go by take these in turn


@dataclass(frozen=True)
class Source:
    """One file of the folder as measured: `seconds` is a clip's length, None for a photo."""

    name: str  # relative to the folder
    width: int
    height: int
    face: bool = False
    seconds: float | None = None


@dataclass(frozen=True)
class FolderJob:
    folder: Path  # absolute
    fragment: dict  # a job file's content: {"job": ..., "render": ...}, sources relative to the folder

    def text(self, at: Path) -> str:
        """The job file's YAML for a file in `at`: its sources relative to `at`."""
        job = dict(self.fragment["job"])
        job["segments"] = [{**s, "source": os.path.relpath(self.folder / s["source"], at)} for s in job["segments"]]
        body = yaml.safe_dump({**self.fragment, "job": job}, sort_keys=False, allow_unicode=True)
        return (f"# The job raypipe planned for the folder {self.folder}: edit it and render it again with\n"
                f"#   python -m raypipe render {at / 'job.yaml'}\n{body}")

    def write(self, run_dir: str | os.PathLike) -> Path:
        path = Path(run_dir) / "job.yaml"
        path.write_text(self.text(Path(run_dir)))
        return path


def natural_key(name: str) -> list:
    """img2 before img10: runs of digits compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name.lower())]


def media_names(names) -> list[str]:
    """The photos and clips among `names`, in natural order."""
    return sorted((n for n in names if n.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)), key=natural_key)


def _effect(source: Source, width: int, height: int, photo_index: int) -> str:
    if (source.height > source.width) != (height > width) and source.width != source.height:
        return "reframe"  # a crop of a portrait source in a landscape frame (or the reverse) loses most of it
    if source.seconds is not None:
        return "static"  # a clip moves by itself
    if source.face:
        return "punch_in"
    return MOVES[photo_index % len(MOVES)]


def _floor(seconds: float) -> float:
    """Milliseconds, rounded down: a clip's duration never asks for more than it holds."""
    return math.floor(seconds * 1000 + 1e-6) / 1000  # 1e-6: 0.6 - 0.3 is 0.29999999999999993


def plan_folder(name: str, sources: list[Source], width: int, height: int, fps, soundtrack: str | None = None,
                soundtrack_seconds: float | None = None) -> dict:
    """The job file for `sources` in their order, rendered at width x height. With a
    soundtrack, the photos share what the clips leave of its length."""
    # A crossfade takes the tail of the segment it leaves and the head of the next: a clip
    # shorter than two of them gets a shorter one, and its duration leaves out its head.
    fades, seconds, lead = [], [], 0.0
    for i, s in enumerate(sources):
        nxt = sources[i + 1] if i + 1 < len(sources) else None
        own = None if s.seconds is None else _floor(min(CLIP_SECONDS, s.seconds - lead))
        fade = 0.0 if nxt is None else min(CROSSFADE, (own if own is not None else MIN_PHOTO_SECONDS) / 2,
                                           (nxt.seconds if nxt.seconds is not None else MIN_PHOTO_SECONDS) / 2)
        fades.append(round(fade, 3))
        seconds.append(own)
        lead = fades[-1]
    photos = sum(1 for s in sources if s.seconds is None)
    photo_seconds = PHOTO_SECONDS
    if soundtrack_seconds is not None and photos:
        clips = sum(t for t in seconds if t is not None)
        photo_seconds = max(MIN_PHOTO_SECONDS, _floor((soundtrack_seconds - clips) / photos))
    segments, photo_index = [], 0
    for s, own, fade in zip(sources, seconds, fades):
        segment = {"source": s.name, "duration": photo_seconds if own is None else own,
                   "effect": _effect(s, width, height, photo_index)}
        photo_index += s.seconds is None and segment["effect"] in MOVES
        if fade:
            segment["transition"] = {"type": "crossfade", "duration": fade}
        segments.append(segment)
    job = {"name": name, "segments": segments}
    if soundtrack:
        job["audio"] = {"path": soundtrack, "fade_out": 1.0}
    return {"job": job, "render": {"width": width, "height": height, "fps": fps}}


def _measure(folder: Path, name: str) -> Source:
    uri = str(folder / name)
    if is_video(uri):
        info = probe(uri)
        return Source(name, info.width, info.height, seconds=info.duration)
    rgb = load_image(uri)
    return Source(name, rgb.shape[1], rgb.shape[0], face=bool(find_faces(rgb)))


def read_folder(folder: Path, width: int, height: int, fps, soundtrack: str | None = None) -> FolderJob:
    """The folder's photos and clips measured and planned (see `plan_folder`)."""
    folder = Path(folder).expanduser().absolute()
    names = media_names(p.name for p in folder.iterdir() if p.is_file())
    if not names:
        raise ConfigError(f"{folder}: no photos or videos in this folder (it looks for "
                          f"{', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})")
    seconds = None
    if soundtrack:
        soundtrack = normalize(soundtrack)
        seconds = soundtrack_duration(soundtrack)
    name = re.sub(r"[^\w.-]+", "-", folder.name).strip("-.") or "folder"
    return FolderJob(folder, plan_folder(name, [_measure(folder, n) for n in names], width, height, fps,
                                         soundtrack, seconds))
