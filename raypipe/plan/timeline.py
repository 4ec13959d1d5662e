"""Plan a job into segments with exact global frame ranges.

Segment boundaries come from cumulative time (boundary i is round(sum of the first i
durations x fps)), so rounding never drifts and the video has exactly
round(total_seconds x fps) frames. A transition occupies the tail of the segment it leaves,
and that segment's task renders it, reading the next source too; the next shot's own time
starts where the transition starts, so its motion runs on without a jump when the next task
takes over.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import accumulate

from omegaconf import DictConfig, OmegaConf

from raypipe.errors import CaptionError, EffectError, JobError, MediaError
from raypipe.frames.captions import POSITIONS, Caption, CaptionStyle, layout
from raypipe.frames.effects import make_params
from raypipe.frames.layers import CaptionLayer, Layer
from raypipe.frames.transitions import TRANSITIONS
from raypipe.media import CODECS, X264_PRESETS, EncodeSpec, MediaInfo, cards, is_video, normalize, probe as probe_media
from raypipe.media.audio import AudioSpec, ClipAudio, Normalize
from raypipe.media.images import load_image_sized
from raypipe.media.video import check_cut
from raypipe.plan.layers import Readers, caption_layer, over, plan_layers
from raypipe.plan.seconds import meant, number, to_frame

AUDIO_MODES = ("drop", "mix", "keep")


@dataclass(frozen=True)
class ClipSpec:
    """The part of a video a shot plays: frame j of the shot shows start + speed * j / fps."""

    start: float
    end: float
    speed: float


@dataclass(frozen=True)
class ShotSpec:
    """A source under an effect over a span of global frames (its lead-in included)."""

    source: str
    effect: str
    params: object
    span_start: int
    span_frames: int
    fps: Fraction
    clip: ClipSpec | None = None  # None: a still image

    def progress(self, frame: int) -> float:
        return (frame - self.span_start) / max(self.span_frames - 1, 1)

    @property
    def seconds(self) -> float:
        return float(max(self.span_frames - 1, 1) / self.fps)

    def source_time(self, frame: int) -> float:
        """Seconds into the source file that global frame `frame` shows (0 for a still)."""
        if self.clip is None:
            return 0.0
        return self.clip.start + self.clip.speed * float((frame - self.span_start) / self.fps)


@dataclass(frozen=True)
class TransitionSpec:
    kind: str
    params: object
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
    # Drawn over its frames in order, the last on top: its caption, then the job's layers on then.
    layers: tuple[Layer, ...] = ()

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def caption(self) -> Caption | None:
        """Its caption, laid out (None: it has none)."""
        return next((layer.kind.caption for layer in self.layers if isinstance(layer.kind, CaptionLayer)), None)

    @property
    def placed(self) -> bool:
        """Whether a layer over it goes where the detections say (its caption; one kept clear of
        the subject): the segment waits until it is placed."""
        return any(layer.placed_by_subject for layer in self.layers)

    @property
    def sources(self) -> tuple[str, ...]:
        """What its frames read: its shot's source, and the next one's during its transition."""
        return tuple(dict.fromkeys((self.shot.source, *((self.transition.into.source,) if self.transition else ()))))


@dataclass(frozen=True)
class TaskPlan:
    """Global frames [start, end) of one segment: what one task renders into one chunk."""

    segment: SegmentPlan
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start

    def chunk(self, extension: str) -> str:
        """Its chunk's name in the run's storage; a retry writes the same name."""
        return f"segments/{self.segment.index:05d}-{self.start:07d}{extension}"


def split(plan: Plan, max_frames: int | None) -> tuple[TaskPlan, ...]:
    """Each segment as tasks of at most `max_frames` frames, as even as the count allows
    (None: one task per segment). Ranges are contiguous and in timeline order."""
    tasks = []
    for seg in plan.segments:
        parts = 1 if max_frames is None else -(-seg.frames // max_frames)
        bounds = [seg.start + (seg.frames * i) // parts for i in range(parts + 1)]
        tasks.extend(TaskPlan(seg, a, b) for a, b in zip(bounds, bounds[1:]))
    return tuple(tasks)


@dataclass(frozen=True)
class Plan:
    name: str
    encode: EncodeSpec
    total_frames: int
    segments: tuple[SegmentPlan, ...]
    audio: AudioSpec
    prompts: tuple[str, ...]
    layers: tuple[Layer, ...] = ()  # the job's, in order (each segment holds those over it)

    @property
    def duration(self) -> float:
        return float(self.total_frames / self.encode.fps)

    def shots(self) -> list[ShotSpec]:
        return [s.shot for s in self.segments]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.source for s in self.shots()))

    def with_sources(self, moved: dict[str, str]) -> Plan:
        """The same plan reading each source (and the soundtrack, the tracks) from where `moved` says."""
        def shot(s: ShotSpec) -> ShotSpec:
            return replace(s, source=moved.get(s.source, s.source))

        def name(uri: str) -> str:
            return moved.get(uri, uri)

        layers = {id(layer): replace(layer, kind=layer.kind.renamed(name))
                  for layer in (*self.layers, *(x for seg in self.segments for x in seg.layers))}
        segments = tuple(replace(seg, shot=shot(seg.shot),
                                 transition=seg.transition and replace(seg.transition, into=shot(seg.transition.into)),
                                 layers=tuple(layers[id(x)] for x in seg.layers))
                         for seg in self.segments)
        audio = replace(self.audio, path=moved.get(self.audio.path, self.audio.path),
                        clips=tuple(replace(c, source=name(c.source)) for c in self.audio.clips),
                        tracks=tuple(replace(t, source=name(t.source)) for t in self.audio.tracks))
        return replace(self, segments=segments, audio=audio, layers=tuple(layers[id(x)] for x in self.layers))

    @property
    def layer_sources(self) -> tuple[str, ...]:
        """The files its layers read (images, videos): never detected, read by the tasks that draw them."""
        return tuple(dict.fromkeys(uri for layer in self.layers for uri in layer.kind.sources))

    def video_ranges(self) -> dict[str, tuple[tuple[float, float], ...]]:
        """Per video source, the spans of seconds of it that the shots show, in order, those
        that overlap merged: where detection looks (and only there, however far apart)."""
        spans: dict[str, list[tuple[float, float]]] = {}
        for shot in self.shots():
            if shot.clip is not None:
                spans.setdefault(shot.source, []).append(
                    (shot.source_time(shot.span_start), shot.source_time(shot.span_start + shot.span_frames - 1)))
        ranges = {}
        for uri, found in spans.items():
            merged: list[tuple[float, float]] = []
            for lo, hi in sorted(found):
                if merged and lo <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
                else:
                    merged.append((lo, hi))
            ranges[uri] = tuple(merged)
        return ranges


def parse_fps(value) -> Fraction:
    try:
        fps = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise JobError("render.fps", f"{value!r} is not a frame rate (use 30 or 30000/1001)") from None
    if not 0 < fps <= 240:
        raise JobError("render.fps", f"must be > 0 and <= 240 (got {value})")
    return fps


def encode_spec(render: DictConfig) -> EncodeSpec:
    for key in ("width", "height"):
        v = render[key]
        if v <= 0 or v % 2:
            raise JobError(f"render.{key}", f"must be a positive even number of pixels (got {v})")
    if render.codec not in CODECS:
        raise JobError("render.codec", f"unknown codec {render.codec!r} (known: {', '.join(CODECS)})")
    limit = CODECS[render.codec].max_side
    if max(render.width, render.height) > limit:
        raise JobError("render.width" if render.width > limit else "render.height",
                       f"{render.codec} encodes at most {limit} pixels a side (got {render.width}x{render.height})")
    if not 0 <= render.crf <= 63 or (render.codec != "vp9" and render.crf > 51):
        raise JobError("render.crf", f"must be in 0..{63 if render.codec == 'vp9' else 51} (got {render.crf})")
    if render.preset not in X264_PRESETS:
        raise JobError("render.preset", f"unknown preset {render.preset!r} (known: {', '.join(X264_PRESETS)})")
    if render.encoder_threads < 1:
        raise JobError("render.encoder_threads", f"must be >= 1 (got {render.encoder_threads})")
    return EncodeSpec(render.width, render.height, parse_fps(render.fps), render.codec, render.crf,
                      render.preset, render.encoder_threads)


@dataclass(frozen=True)
class _Entry:
    """One validated segment of the job, still in seconds."""

    where: str
    source: str
    effect: str
    params: object
    seconds: Fraction | None  # None: a video's trimmed range, played once
    transition: str
    transition_params: object
    transition_seconds: Fraction
    caption: CaptionStyle | None
    clip: ClipSpec | None
    audio: str
    audio_volume: float


_VIDEO_ONLY = {"start": 0.0, "end": None, "speed": 1.0, "audio": "drop"}


def _clip(where: str, seg, uri: str, probe) -> ClipSpec:
    try:
        media: MediaInfo = probe(uri)
    except MediaError as e:
        raise JobError(f"{where}.source", str(e)) from None
    start = float(number(seg.start, f"{where}.start"))
    end = media.duration if seg.end is None else float(number(seg.end, f"{where}.end"))
    speed = float(number(seg.speed, f"{where}.speed"))
    if not 0 < speed <= 16:
        raise JobError(f"{where}.speed", f"must be > 0 and <= 16 (got {seg.speed})")
    check_cut(where, ("start", "end"), (seg.start, seg.end), start, end, uri, media.duration)
    if seg.audio != "drop" and not media.audio:
        raise JobError(f"{where}.audio", f"{seg.audio} needs sound, and {uri} has no audio stream")
    return ClipSpec(start, end, speed)


def _caption(where: str, cfg) -> CaptionStyle | None:
    if cfg is None or not str(cfg.text).strip():
        return None
    if cfg.position not in POSITIONS:
        raise JobError(f"{where}.position", f"unknown position {cfg.position!r} (known: {', '.join(POSITIONS)})")
    for key in ("size", "outline", "box_opacity", "margin", "fade_in", "fade_out"):
        if number(cfg[key], f"{where}.{key}") < 0:
            raise JobError(f"{where}.{key}", f"must be >= 0 (got {cfg[key]})")
    if not 0 < cfg.size <= 0.5:
        raise JobError(f"{where}.size", f"must be in (0, 0.5] of the frame height (got {cfg.size})")
    return CaptionStyle(**OmegaConf.to_container(cfg))


def _drop_hint(path: str, e: EffectError) -> str:
    # An effect changed on the command line keeps the job file's parameters for the old one;
    # Hydra merges dicts, so only a deletion removes them.
    return f"; on the command line, drop it with ~{path}.{e.unknown}" if e.unknown else ""


def _source(where: str, seg, enc: EncodeSpec) -> str:
    if not isinstance(seg.source, str) or not seg.source.strip():
        raise JobError(f"{where}.source", "must name an image or a video (a path, a URI, sample:NAME or a card, "
                                          "color:#RRGGBB or gradient:#RRGGBB,#RRGGBB[,angle])")
    uri = normalize(seg.source.strip())
    if not cards.is_card(uri):
        return uri
    try:
        return cards.sized(uri, enc.width, enc.height)
    except MediaError as e:
        raise JobError(f"{where}.source", str(e)) from None


def _entry(i: int, seg, last: bool, probe, enc: EncodeSpec) -> _Entry:
    where = f"job.segments[{i}]"
    uri = _source(where, seg, enc)
    clip = None
    if is_video(uri):
        clip = _clip(where, seg, uri, probe)
        if seg.audio not in AUDIO_MODES:
            raise JobError(f"{where}.audio", f"must be one of {', '.join(AUDIO_MODES)} (got {seg.audio!r})")
    else:
        for key, default in _VIDEO_ONLY.items():
            if seg[key] != default:
                raise JobError(f"{where}.{key}", f"applies to video sources only, and {uri} is an image")
    if seg.duration is None and clip is None:
        raise JobError(f"{where}.duration", "is required for an image")
    seconds = None if seg.duration is None else number(seg.duration, f"{where}.duration")
    if seconds is not None and seconds <= 0:
        raise JobError(f"{where}.duration", f"must be > 0 seconds (got {seg.duration})")
    try:
        params = make_params(seg.effect, dict(seg.params))
    except EffectError as e:
        raise JobError(f"{where}.effect" if e.name_unknown else f"{where}.params",
                       str(e) + _drop_hint(f"job.segments.{i}.params", e)) from None
    tr = seg.transition
    try:
        tr_params = make_params(tr.type, dict(tr.params), TRANSITIONS, "transition")
    except EffectError as e:
        raise JobError(f"{where}.transition.type" if e.name_unknown else f"{where}.transition.params",
                       str(e) + _drop_hint(f"job.segments.{i}.transition.params", e)) from None
    tr_seconds = number(tr.duration, f"{where}.transition.duration")
    if tr.type != "cut":
        if last:
            raise JobError(f"{where}.transition", "the last segment has no next segment to transition into")
        if tr_seconds <= 0:
            raise JobError(f"{where}.transition.duration", f"must be > 0 for {tr.type} (got {tr.duration})")
        if seconds is not None and tr_seconds > seconds:
            raise JobError(f"{where}.transition.duration",
                           f"{tr.duration} s is longer than the segment ({seg.duration} s)")
    volume = float(number(seg.audio_volume, f"{where}.audio_volume"))
    if volume < 0:
        raise JobError(f"{where}.audio_volume", f"must be >= 0 (got {seg.audio_volume})")
    return _Entry(where, uri, seg.effect, params, seconds, tr.type, tr_params, tr_seconds,
                  _caption(f"{where}.caption", seg.caption), clip, seg.audio, volume)


def _transition_frames(e: _Entry, frames: int, fps: Fraction) -> int:
    if frames < 1:
        raise JobError(f"{e.where}.duration", f"{float(e.seconds)} s is shorter than one frame at {fps} fps")
    if e.transition == "cut":
        return 0
    n = to_frame(e.transition_seconds, fps)
    if not 1 <= n <= frames:
        raise JobError(f"{e.where}.transition.duration",
                       f"{float(e.transition_seconds)} s is {n} frames at {fps} fps; it must be 1..{frames}")
    return n


def _durations(entries: list[_Entry]) -> list[Fraction]:
    """Seconds on screen per segment. A video without a duration plays its range once; the
    part of it shown under the previous transition counts toward that."""
    out = []
    for i, e in enumerate(entries):
        seconds = e.seconds
        if seconds is None:
            prev = entries[i - 1] if i else None
            lead = prev.transition_seconds if prev and prev.transition != "cut" else Fraction(0)
            seconds = meant((e.clip.end - e.clip.start) / e.clip.speed) - lead
            if seconds <= 0:
                raise JobError(f"{e.where}.end", "the range is used up by the previous segment's transition")
            if e.transition != "cut" and e.transition_seconds > seconds:
                raise JobError(f"{e.where}.transition.duration", f"{float(e.transition_seconds)} s is longer than "
                               f"the segment ({float(seconds):.3f} s of video)")
        out.append(seconds)
    return out


def _check_clip(e: _Entry, shot: ShotSpec) -> None:
    needs = shot.source_time(shot.span_start + shot.span_frames - 1)
    if needs > e.clip.end + 1e-6:
        field = "duration" if e.seconds is not None else "end"
        raise JobError(f"{e.where}.{field}", f"the shot shows {shot.span_frames} frames, up to {needs:.3f} s of "
                       f"{e.source} at speed {e.clip.speed:g}, past the end of its range ({e.clip.end:.3f} s)")


def image_size(uri: str) -> tuple[int, int]:
    """An image layer's (width, height), read as cheaply as its format allows."""
    return load_image_sized(uri, at_least=1)[1]


def plan(job: DictConfig, render: DictConfig, probe=probe_media, measure=image_size) -> Plan:
    """The job as exact frame ranges; `probe` reads a video's duration (a stand-in in tests),
    a segment's or a layer's; `measure` an image layer's size."""
    enc = encode_spec(render)
    if not job.segments:
        raise JobError("job.segments", "is empty: a job needs at least one segment")
    n = len(job.segments)
    entries = [_entry(i, seg, i == n - 1, probe, enc) for i, seg in enumerate(job.segments)]
    # Boundary i is round(sum of the first i durations x fps): rounding never accumulates.
    bounds = [to_frame(t, enc.fps) for t in accumulate(_durations(entries), initial=Fraction(0))]
    fades = [_transition_frames(e, bounds[i + 1] - bounds[i], enc.fps) for i, e in enumerate(entries)]
    lead_ins = [0] + fades[:-1]  # frames of each shot already shown during the previous transition
    shots = [ShotSpec(e.source, e.effect, e.params, bounds[i] - lead, bounds[i + 1] - bounds[i] + lead, enc.fps, e.clip)
             for i, (e, lead) in enumerate(zip(entries, lead_ins))]
    for e, shot in zip(entries, shots):
        if e.clip is not None:
            _check_clip(e, shot)
    captions = []
    for e in entries:
        try:
            captions.append(layout(e.caption, enc.width, enc.height) if e.caption else None)
        except CaptionError as err:
            raise JobError(f"{e.where}.caption", str(err)) from None
    layers = plan_layers(job.layers, bounds, enc.width, enc.height, enc.fps, Readers(measure, probe))
    segments = tuple(
        SegmentPlan(i, bounds[i], bounds[i + 1], shots[i],
                    TransitionSpec(e.transition, e.transition_params, bounds[i + 1] - f, f, shots[i + 1])
                    if f else None,
                    (*((caption_layer(i, captions[i], bounds[i], bounds[i + 1], enc.fps),) if captions[i] else ()),
                     *over(layers, bounds[i], bounds[i + 1])))
        for i, (e, f) in enumerate(zip(entries, fades))
    )
    return Plan(job.name, enc, bounds[-1], segments, _audio(job.audio, entries, shots, enc.fps, bounds[-1]),
                tuple(job.prompts), layers)


def _audio(audio: DictConfig, entries: list[_Entry], shots: list[ShotSpec], fps: Fraction, frames: int) -> AudioSpec:
    for key in ("volume", "fade_in", "fade_out", "duck", "gain"):
        if number(audio[key], f"job.audio.{key}") < 0:
            raise JobError(f"job.audio.{key}", f"must be >= 0 (got {audio[key]})")
    clips = tuple(
        ClipAudio(e.source, e.clip.start, float(shot.span_frames / fps), e.clip.speed, float(shot.span_start / fps),
                  e.audio_volume, e.audio == "keep")
        for e, shot in zip(entries, shots) if e.clip is not None and e.audio != "drop"
    )
    seconds = float(frames / fps)
    tracks = tuple(_track(f"job.audio.tracks[{i}]", t, seconds) for i, t in enumerate(audio.tracks))
    return AudioSpec(normalize(audio.path) if audio.path else None, float(audio.volume), float(audio.fade_in),
                     float(audio.fade_out), float(audio.duck), clips, tracks, _normalize(audio.normalize),
                     float(audio.gain))


def _track(where: str, track, video: float) -> ClipAudio:
    """A placed sound, from its start to its cut_to (or the file's end), cut at the video's end."""
    start, cut_from = float(number(track.start, f"{where}.start")), float(number(track.cut_from, f"{where}.cut_from"))
    volume, speed = float(number(track.volume, f"{where}.volume")), float(number(track.speed, f"{where}.speed"))
    for key, value in (("start", start), ("cut_from", cut_from), ("volume", volume)):
        if value < 0:
            raise JobError(f"{where}.{key}", f"must be >= 0 (got {value:g})")
    if not 0 < speed <= 100:
        raise JobError(f"{where}.speed", f"must be > 0 and <= 100 (got {speed:g})")
    if start >= video:
        raise JobError(f"{where}.start", f"{start:g} s is not before the video's end ({video:.3f} s)")
    seconds = video - start  # the file's end, where it comes first, is where its sound stops
    if track.cut_to is not None:
        cut_to = float(number(track.cut_to, f"{where}.cut_to"))
        if not cut_to > cut_from:
            raise JobError(f"{where}.cut_to", f"must be after cut_from ({cut_from:g} s; got {cut_to:g})")
        seconds = min(seconds, (cut_to - cut_from) / speed)
    return ClipAudio(normalize(track.path), cut_from, seconds, speed, start, volume, False)


def _normalize(cfg) -> Normalize | None:
    if not cfg.enable:
        return None
    window, max_gain = cfg.window, float(number(cfg.max_gain, "job.audio.normalize.max_gain"))
    if not (isinstance(window, int) and 3 <= window <= 301 and window % 2):
        raise JobError("job.audio.normalize.window", f"must be an odd number from 3 to 301 (got {window})")
    if not 1 <= max_gain <= 100:
        raise JobError("job.audio.normalize.max_gain", f"must be in 1..100 (got {max_gain:g})")
    return Normalize(window, max_gain)
