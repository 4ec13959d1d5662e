"""Reading sources: still images and video files, from local paths, URIs that pyarrow.fs
resolves, and `sample:NAME`.

`sample:NAME` is one of the photographs that ship inside scikit-image, so demos and tests
need nothing downloaded. Videos are decoded by ffmpeg one time range at a time, so a
segment task decodes only the frames it shows.
"""
from __future__ import annotations

import functools
import io
import os
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from raypipe import RaypipeError
from raypipe.storage import fetch_file, open_input

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "cat", "camera", "hubble_deep_field",
           "immunohistochemistry", "retina", "colorwheel")


VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".gif")


class SourceError(RaypipeError, ValueError):
    pass


def is_video(uri: str) -> bool:
    return not uri.startswith("sample:") and uri.lower().endswith(VIDEO_EXTENSIONS)


def _read_bytes(uri: str) -> bytes:
    try:
        with open_input(uri) as f:
            return f.read()
    except FileNotFoundError:
        raise SourceError(f"no such file: {uri}") from None
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read {uri}: {e}") from None


def load_image(uri: str) -> np.ndarray:
    """RGB uint8, C-contiguous, EXIF orientation applied."""
    if uri.startswith("sample:"):
        name = uri.split(":", 1)[1]
        if name not in SAMPLES:
            raise SourceError(f"unknown sample {name!r} (known: {', '.join(SAMPLES)})")
        import skimage.data

        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        return np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
    data = _read_bytes(uri)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise SourceError(f"cannot decode image {uri}: {e}") from None


def normalize(uri: str) -> str:
    """Absolute local paths, so that every worker, whatever its cwd, reads the same file."""
    if uri.startswith("sample:") or "://" in uri:
        return uri
    return os.path.abspath(os.path.expanduser(uri))



# ---- video --------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    fps: float
    width: int  # as displayed: ffmpeg applies the rotation tag when it decodes
    height: int
    audio: bool


_FETCHED: dict[str, str] = {}


def local_path(uri: str) -> str:
    """A path ffmpeg can open: local files as they are; other URIs fetched once per process
    and kept until `release_fetched`."""
    if "://" not in uri:
        if not os.path.isfile(uri):
            raise SourceError(f"no such file: {uri}")
        return uri
    if uri not in _FETCHED:
        fd, path = tempfile.mkstemp(prefix="raypipe-src-", suffix=os.path.splitext(uri)[1])
        os.close(fd)
        try:
            fetch_file(uri, path)
        except FileNotFoundError:
            os.unlink(path)
            raise SourceError(f"no such file: {uri}") from None
        except OSError as e:
            os.unlink(path)
            raise SourceError(f"cannot read {uri}: {e}") from None
        _FETCHED[uri] = path
    return _FETCHED[uri]


def release_fetched() -> None:
    """Delete this process's fetched copies: a Ray worker lives through many renders."""
    for path in _FETCHED.values():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    _FETCHED.clear()


@functools.lru_cache(maxsize=64)
def probe_media(uri: str) -> MediaInfo:
    from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

    path = local_path(uri)
    try:
        info = ffmpeg_parse_infos(path, decode_file=False)
    except (OSError, IOError, KeyError, IndexError, ValueError) as e:
        raise SourceError(f"cannot read video {uri}: {str(e).strip().splitlines()[-1]}") from None
    if not info.get("video_found") or not info.get("duration"):
        raise SourceError(f"no video stream in {uri}")
    w, h = info["video_size"]
    if abs(info.get("video_rotation", 0)) in (90, 270):
        w, h = h, w
    return MediaInfo(float(info["duration"]), float(info["video_fps"]), int(w), int(h), bool(info.get("audio_found")))


# Frames a range may come up short by at its very end (the fps filter's rounding near the
# last packet); those repeat the last frame. A larger shortfall is an error, not padding.
_SHORT_TOLERANCE = 2


def _decode(uri: str, seek: float, vf: str, count: int) -> Iterator[np.ndarray]:
    from raypipe.ffmpeg import FFMPEG, FFmpegError

    info = probe_media(uri)
    size = info.width * info.height * 3
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", f"{seek:.6f}",
                                 "-i", local_path(uri), "-vf", vf, "-an", "-frames:v", str(count),
                                 "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                                stdout=subprocess.PIPE, stderr=log)
        try:
            last, produced = None, 0
            while produced < count:
                buf = proc.stdout.read(size)
                if len(buf) < size:
                    break
                last = np.frombuffer(buf, np.uint8).reshape(info.height, info.width, 3)
                produced += 1
                yield last
            if produced < count:
                if proc.wait() != 0:
                    log.seek(0)
                    raise FFmpegError(f"decoding {uri} failed: {log.read().decode(errors='replace').strip()[-500:]}")
                if last is None or count - produced > _SHORT_TOLERANCE:
                    raise SourceError(f"{uri} ended {count - produced} frames early (from {seek:.3f} s)")
                for _ in range(count - produced):
                    yield last
        finally:
            proc.kill()
            proc.wait()


def read_frames(uri: str, start: float, speed: float, fps, count: int) -> Iterator[np.ndarray]:
    """`count` frames at output rate `fps`: frame j shows source time start + speed * j / fps.

    Seeking before the input is frame-accurate in ffmpeg (it decodes from the previous
    keyframe and drops what precedes `start`), so a task decodes only its own range.
    round=up makes each output frame the source frame on screen at its time (the last one
    at or before it), not one up to half an output frame later.
    """
    return _decode(uri, start, f"setpts=(PTS-STARTPTS)/{speed!r},fps={fps}:round=up", count)


def keyframes(uri: str, start: float, end: float, rate: float) -> list[tuple[float, np.ndarray]]:
    """Frames at start, start + 1/rate, ... up to end, for detection (at least one)."""
    n = max(1, int(np.floor((end - start) * rate + 1e-9)) + 1)
    return [(start + k / rate, f.copy()) for k, f in enumerate(read_frames(uri, start, 1.0, rate, n))]
