"""Plan a job into segments with exact global frame ranges.

Segment boundaries come from cumulative time (boundary i is round(sum of the first i
durations x fps)), so rounding never drifts and the video has exactly
round(total_seconds x fps) frames. A transition occupies the tail of the segment it leaves,
and that segment's task renders it, reading the next source too; the next shot's own time
starts where the transition starts, so its motion runs on without a jump when the next task
takes over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from fractions import Fraction

from omegaconf import DictConfig

from raypipe import RaypipeError
from raypipe.effects import TRANSITIONS, EffectError, make_params
from raypipe.sources import normalize

CODECS = {"h264": "libx264"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class JobError(RaypipeError, ValueError):
    """Bad input, reported as one line that names the field or file."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class EncodeSpec:
    width: int
    height: int
    fps: Fraction
    codec: str
    crf: int
    preset: str
    threads: int


@dataclass(frozen=True)
class ShotSpec:
    """A source under an effect over a span of global frames (its lead-in included)."""

    source: str
    effect: str
    params: object
    span_start: int
    span_frames: int

    def progress(self, frame: int) -> float:
        return (frame - self.span_start) / max(self.span_frames - 1, 1)


@dataclass(frozen=True)
class TransitionSpec:
    kind: str
    start: int  # first global frame of the transition
    frames: int
    into: ShotSpec

    def alpha(self, frame: int) -> float:
        # (j + 1) / (n + 1): never fully either side, which the neighbouring frames show.
        return (frame - self.start + 1) / (self.frames + 1)


@dataclass(frozen=True)
class SegmentPlan:
    index: int
    start: int  # global frames [start, end)
    end: int
    shot: ShotSpec
    transition: TransitionSpec | None

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class AudioSpec:
    path: str | None
    volume: float
    fade_in: float
    fade_out: float


@dataclass(frozen=True)
class Plan:
    name: str
    encode: EncodeSpec
    total_frames: int
    segments: tuple[SegmentPlan, ...]
    audio: AudioSpec
    prompts: tuple[str, ...]

    @property
    def duration(self) -> float:
        return float(self.total_frames / self.encode.fps)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.shot.source for s in self.segments))


def parse_fps(value) -> Fraction:
    try:
        fps = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise JobError("render.fps", f"{value!r} is not a frame rate (use 30 or 30000/1001)") from None
    if not 0 < fps <= 240:
        raise JobError("render.fps", f"must be > 0 and <= 240 (got {value})")
    return fps


def _number(value, where: str) -> Fraction:
    """Decimal-exact: 0.1 s means 1/10, not the nearest binary float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobError(where, f"must be a number (got {value!r})")
    if not math.isfinite(value):
        raise JobError(where, f"must be finite (got {value})")
    return Fraction(repr(value))


def _to_frame(t: Fraction, fps: Fraction) -> int:
    return math.floor(t * fps + Fraction(1, 2))  # round half up, the same at every boundary


def encode_spec(render: DictConfig) -> EncodeSpec:
    for key in ("width", "height"):
        v = render[key]
        if v <= 0 or v % 2:
            raise JobError(f"render.{key}", f"must be a positive even number of pixels (got {v})")
    if render.codec not in CODECS:
        raise JobError("render.codec", f"unknown codec {render.codec!r} (known: {', '.join(CODECS)})")
    if not 0 <= render.crf <= 51:
        raise JobError("render.crf", f"must be in 0..51 (got {render.crf})")
    if render.preset not in X264_PRESETS:
        raise JobError("render.preset", f"unknown preset {render.preset!r} (known: {', '.join(X264_PRESETS)})")
    if render.encoder_threads < 1:
        raise JobError("render.encoder_threads", f"must be >= 1 (got {render.encoder_threads})")
    return EncodeSpec(render.width, render.height, parse_fps(render.fps), render.codec, render.crf,
                      render.preset, render.encoder_threads)


@dataclass(frozen=True)
class _Entry:
    """One validated segment of the job, still in seconds."""

    source: str
    effect: str
    params: object
    seconds: Fraction
    transition: str
    transition_seconds: Fraction


def _entry(i: int, seg, last: bool) -> _Entry:
    where = f"job.segments[{i}]"
    if not isinstance(seg.source, str) or not seg.source.strip():
        raise JobError(f"{where}.source", "must name an image (a path, a URI or sample:NAME)")
    seconds = _number(seg.duration, f"{where}.duration")
    if seconds <= 0:
        raise JobError(f"{where}.duration", f"must be > 0 seconds (got {seg.duration})")
    try:
        params = make_params(seg.effect, dict(seg.params))
    except EffectError as e:
        raise JobError(f"{where}.effect" if "unknown effect" in str(e) else f"{where}.params", str(e)) from None
    except TypeError as e:
        raise JobError(f"{where}.params", str(e)) from None
    tr = seg.transition
    if tr.type not in TRANSITIONS:
        raise JobError(f"{where}.transition.type", f"unknown transition {tr.type!r} (known: {', '.join(TRANSITIONS)})")
    tr_seconds = _number(tr.duration, f"{where}.transition.duration")
    if tr.type != "cut":
        if last:
            raise JobError(f"{where}.transition", "the last segment has no next segment to transition into")
        if tr_seconds <= 0:
            raise JobError(f"{where}.transition.duration", f"must be > 0 for {tr.type} (got {tr.duration})")
        if tr_seconds > seconds:
            raise JobError(f"{where}.transition.duration", f"{tr.duration} s is longer than the segment ({seg.duration} s)")
    return _Entry(normalize(seg.source.strip()), seg.effect, params, seconds, tr.type, tr_seconds)


def _transition_frames(i: int, e: _Entry, frames: int, fps: Fraction) -> int:
    if frames < 1:
        raise JobError(f"job.segments[{i}].duration", f"{float(e.seconds)} s is shorter than one frame at {fps} fps")
    if e.transition == "cut":
        return 0
    n = _to_frame(e.transition_seconds, fps)
    if not 1 <= n <= frames:
        raise JobError(f"job.segments[{i}].transition.duration",
                       f"{float(e.transition_seconds)} s is {n} frames at {fps} fps; it must be 1..{frames}")
    return n


def plan(job: DictConfig, render: DictConfig) -> Plan:
    enc = encode_spec(render)
    if not job.segments:
        raise JobError("job.segments", "is empty: a job needs at least one segment")
    n = len(job.segments)
    entries = [_entry(i, seg, last=i == n - 1) for i, seg in enumerate(job.segments)]
    # Boundary i is round(sum of the first i durations x fps): rounding never accumulates.
    bounds = [_to_frame(t, enc.fps) for t in accumulate((e.seconds for e in entries), initial=Fraction(0))]
    fades = [_transition_frames(i, e, bounds[i + 1] - bounds[i], enc.fps) for i, e in enumerate(entries)]
    lead_ins = [0] + fades[:-1]  # frames of each shot already shown during the previous transition
    shots = [ShotSpec(e.source, e.effect, e.params, bounds[i] - lead, bounds[i + 1] - bounds[i] + lead)
             for i, (e, lead) in enumerate(zip(entries, lead_ins))]
    segments = tuple(
        SegmentPlan(i, bounds[i], bounds[i + 1], shots[i],
                    TransitionSpec(e.transition, bounds[i + 1] - f, f, shots[i + 1]) if f else None)
        for i, (e, f) in enumerate(zip(entries, fades))
    )
    audio = job.audio
    for key in ("volume", "fade_in", "fade_out"):
        if _number(audio[key], f"job.audio.{key}") < 0:
            raise JobError(f"job.audio.{key}", f"must be >= 0 (got {audio[key]})")
    return Plan(
        name=job.name,
        encode=enc,
        total_frames=bounds[-1],
        segments=segments,
        audio=AudioSpec(normalize(audio.path) if audio.path else None, float(audio.volume), float(audio.fade_in),
                        float(audio.fade_out)),
        prompts=tuple(job.prompts),
    )
