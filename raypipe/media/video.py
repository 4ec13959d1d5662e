"""Video sources decoded in-process with PyAV, from storage streams, upright.

- Orientation: the display matrix that phones write is applied (the coded frames of a
  portrait clip are landscape); `MediaInfo` reports the upright size.
- Pixel shape: non-square pixels (sample aspect ratio) are scaled to the display aspect.
- Any pixel format FFmpeg decodes, 10-bit included, is converted by swscale with the
  frame's own matrix and range; HDR (PQ, HLG) is tone-mapped to SDR (`hdr.py`).
- Time: output frame j shows the source frame on screen at its time (the last one whose
  timestamp is at or before it), from the frames' own timestamps, so variable frame rate
  clips give exactly the planned frames. A task seeks to its range and decodes only that.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from raypipe.errors import JobError
from raypipe.media.hdr import tone_map
from raypipe.media.streams import MediaError, ReadCounter, generated, open_source

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".gif", ".3gp")
_HDR = {16: "pq", 18: "hlg"}  # AVColorTransferCharacteristic: SMPTE ST 2084, ARIB STD-B67
_EPS = 1e-4  # seconds: timestamps are rational, output times are floats
_SHORT_TOLERANCE = 2  # frames a range may run past the last one (its duration rounded) before it is an error
# Seconds of the stream that one read from remote storage fetches at most: a range's last
# request overshoots what it shows by no more than this.
READ_AHEAD_S = 0.5


def is_video(uri: str) -> bool:
    return not generated(uri) and uri.lower().endswith(VIDEO_EXTENSIONS)


def reason(e: Exception) -> str:
    """FFmpeg's own words for a failure, on one line."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.strip().splitlines()[0]


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    fps: float
    width: int  # upright, at the display aspect
    height: int
    audio: bool
    rotation: int = 0  # degrees clockwise that turn the coded picture upright
    hdr: str | None = None  # "pq" or "hlg": tone-mapped when decoded


class VideoSource:
    """One open video file: its first video stream and how to show its frames upright."""

    def __init__(self, uri: str, counter: ReadCounter | None = None):
        self.uri = uri
        self._file = open_source(uri, counter)
        try:
            self.container = av.open(self._file, "r")
        except av.FFmpegError as e:
            self._file.close()
            raise MediaError(f"cannot read video {uri}: {reason(e)}") from None
        if not self.container.streams.video:
            self.close()
            raise MediaError(f"no video stream in {uri}")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        if self.container.bit_rate:
            self._file.raw.read_ahead(self.container.bit_rate / 8 * READ_AHEAD_S)
        self._keys: list[float] | None = None
        # Timestamps count from the file's start, as ffmpeg's -ss does.
        start = self.container.start_time
        self.origin = start / av.time_base if start is not None else 0.0
        self._geometry = None
        # One converter for the whole stream: a fresh one per frame costs ~5 ms at 1080p.
        self._convert = VideoReformatter()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()
        self._file.close()

    @property
    def duration(self) -> float:
        s = self.stream
        if s.duration is not None:
            return float(s.duration * s.time_base)
        if self.container.duration is not None:
            return self.container.duration / av.time_base
        raise MediaError(f"cannot tell how long {self.uri} is (no duration in the file)")

    def _setup(self, frame: av.VideoFrame) -> None:
        sar = self.stream.sample_aspect_ratio
        width = frame.width if not sar or sar == 1 else 2 * max(1, round(frame.width * sar / 2))
        turns = round(-(frame.rotation or 0) / 90) % 4
        self._geometry = (width, frame.height, turns, _HDR.get(int(frame.color_trc)))

    def upright(self, frame: av.VideoFrame) -> np.ndarray:
        """RGB uint8, upright, at the display aspect; C-contiguous."""
        if self._geometry is None:
            self._setup(frame)
        width, height, turns, hdr = self._geometry
        rgb = self._convert.reformat(frame, width=width, height=height,
                                     format="rgb48le" if hdr else "rgb24").to_ndarray()
        if hdr:
            rgb = tone_map(rgb, hdr)
        return np.ascontiguousarray(np.rot90(rgb, -turns)) if turns else rgb

    def frames(self, start: float = 0.0, seek: bool = False) -> Iterator[tuple[float, av.VideoFrame]]:
        """(seconds from the file's start, frame) from the keyframe at or before `start` on
        (`seek`: seek there even at 0, where a fresh demuxer already is)."""
        if start > 0 or seek:
            # Floored with a margin for float error: a key frame's own time lands on it.
            self.container.seek(math.floor((start + self.origin) / self.stream.time_base + 1e-6), stream=self.stream,
                                backward=True)
        try:
            for packet in self.container.demux(self.stream):
                for frame in packet.decode():
                    if frame.time is not None:
                        yield frame.time - self.origin, frame
        except av.FFmpegError as e:
            raise MediaError(f"cannot decode {self.uri}: {reason(e)}") from None

    def keyframe_times(self) -> list[float]:
        """Seconds at which the index's key frames show; empty where the container has none.
        The index has decode times: with B-frames, MP4 shifts them back by the reorder delay
        (the first is negative), which is added back."""
        if self._keys is None:
            base = float(self.stream.time_base)
            keys = [e.timestamp * base - self.origin for e in self.stream.index_entries if e.is_keyframe]
            delay = max(0.0, -keys[0]) if keys else 0.0
            self._keys = [k + delay for k in keys]
        return self._keys

    def _passes_key(self, t: float, at: float) -> bool:
        """Whether decoding on from `at` to time `t` would pass a key frame (a gap in the
        times longer than the rest of the GOP): then a seek to t decodes less."""
        keys = self.keyframe_times()
        i = bisect.bisect_right(keys, t + _EPS) - 1
        return i >= 0 and keys[i] > at + _EPS

    def on_screen(self, times: Iterable[float]) -> Iterator[np.ndarray]:
        """For each time (non-decreasing), the frame on screen then. A frame shown at several
        times is the same array each time, so consumers can reuse what they built from it.
        Where the next time lies past a key frame that decoding on would reach, it seeks:
        sparse times (detection's samples, spans far apart) decode only the GOPs they show."""
        times = list(times)
        decoded = self.frames(times[0] if times else 0.0)
        shown = shown_rgb = None
        pending = next(decoded, None)
        interval = 1.0 / float(self.stream.average_rate or self.stream.guessed_rate or 30)
        for t in times:
            if pending is not None and pending[0] < t - interval and self._passes_key(t, pending[0]):
                decoded.close()
                decoded = self.frames(t, seek=True)
                shown, pending, shown_rgb = None, next(decoded, None), None
            while pending is not None and pending[0] <= t + _EPS:
                shown, pending = pending, next(decoded, None)
                shown_rgb = None
            if shown is None:  # before the first frame: the first frame is what shows
                if pending is None:
                    raise MediaError(f"no decodable frames in {self.uri} from {t:.3f} s")
                shown, pending = pending, next(decoded, None)
            if pending is None and t > shown[0] + _SHORT_TOLERANCE * interval + _EPS:
                raise MediaError(f"{self.uri} ends at {shown[0]:.3f} s, before {t:.3f} s: the file is shorter than "
                                 f"its header says (truncated?)")
            if shown_rgb is None:
                shown_rgb = self.upright(shown[1])
            yield shown_rgb

    def _check_ends(self, duration: float, interval: float) -> None:
        """A file cut short (a failed copy, a phone's interrupted recording) keeps the index
        that promises the whole length: decode its last second to be sure it is there."""
        last = None
        # Sought even to 0: decoding the first frame may have drained a clip of a few frames.
        for t, _ in self.frames(max(0.0, duration - 1.0), seek=True):
            last = t
        if last is None or last + _SHORT_TOLERANCE * interval < duration - _EPS:
            ends = "no decodable frames" if last is None else f"frames up to {last:.3f} s"
            raise MediaError(f"{self.uri} is truncated: its header says {duration:.3f} s, it has {ends}")

    def info(self) -> MediaInfo:
        """What the planner needs, checked by decoding the first frame and the last second."""
        duration = self.duration
        first = next(self.on_screen([0.0]))
        rate = self.stream.average_rate or self.stream.guessed_rate
        self._check_ends(duration, 1.0 / float(rate or 30))
        turns, hdr = self._geometry[2:]
        return MediaInfo(duration, float(rate) if rate else 0.0, int(first.shape[1]), int(first.shape[0]),
                         bool(self.container.streams.audio), 90 * turns, hdr)


def probe(uri: str, counter: ReadCounter | None = None) -> MediaInfo:
    with VideoSource(uri, counter) as v:
        return v.info()


def read_frames(uri: str, start: float, speed: float, fps, count: int, counter: ReadCounter | None = None,
                hold: float = math.inf) -> Iterator[np.ndarray]:
    """`count` frames at output rate `fps`: frame j shows source time start + speed * j / fps,
    or `hold` where that is later (the frames after it show the one on screen then)."""
    step = speed / float(fps)
    with VideoSource(uri, counter) as v:
        yield from v.on_screen(min(start + j * step, hold) for j in range(count))


def sample_times(ranges: Iterable[tuple[float, float]], rate: float) -> list[float]:
    """Each range's start, start + 1/rate, ... up to its end (at least its start), in order."""
    times = []
    for start, end in ranges:
        n = max(1, math.floor((end - start) * rate + 1e-9) + 1)
        times += [start + k / rate for k in range(n)]
    return times


def keyframes(uri: str, ranges: Iterable[tuple[float, float]], rate: float,
              counter: ReadCounter | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Frames at `sample_times(ranges, rate)`, for detection, one at a time; ranges (sorted,
    apart) far from each other are reached by seeking, not by decoding what lies between."""
    times = sample_times(ranges, rate)
    with VideoSource(uri, counter) as v:
        yield from zip(times, v.on_screen(times))


def decode_all(uri: str) -> np.ndarray:
    """Every frame of the first video stream, upright: (N, H, W, 3). For checks and tests."""
    with VideoSource(uri) as v:
        frames = [v.upright(frame) for _, frame in v.frames()]
        promised = v.stream.frames
    if not frames or len(frames) < promised:
        raise MediaError(f"{uri} is truncated: {len(frames)} frames decoded of {promised}")
    return np.stack(frames)


def count_frames(uri: str) -> int:
    """Frames in the first video stream, counted by demuxing every packet (no decoding)."""
    with VideoSource(uri) as v:
        return sum(1 for p in v.container.demux(v.stream) if p.size)


def check_cut(where: str, keys: tuple[str, str], given: tuple, start: float, end: float, uri: str,
              duration: float) -> None:
    """A cut of a clip, [start, end) seconds of it, lies inside it: else a JobError naming the key
    (`keys`: the config's names for its two ends; `given`: their values as written)."""
    if not 0 <= start < duration:
        raise JobError(f"{where}.{keys[0]}", f"{given[0]} s is outside {uri} (0 to {duration:.2f} s)")
    if end > duration + 1e-3:
        raise JobError(f"{where}.{keys[1]}", f"{given[1]} s is past the end of {uri} ({duration:.2f} s)")
    if end <= start:
        raise JobError(f"{where}.{keys[1]}", f"must be after {keys[0]} ({given[0]} s), got {end} s")
