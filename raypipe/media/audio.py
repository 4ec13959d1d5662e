"""The video's sound, mixed once: the soundtrack, each clip's own sound and each placed track
at its place, then (where asked) the mix's loudness normalised and its level set.

Sources are decoded from storage streams (a clip's sound: only its range), resampled to
48 kHz stereo float, and mixed as arrays, so there is no seam at a segment boundary.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
import av.filter
import numpy as np

from raypipe.media.streams import MediaError, ReadCounter, open_source
from raypipe.media.video import reason

RATE = 48000
CLIP_FADE = 0.05  # seconds: a clip's own sound starts and stops without a click
DUCK_RAMP = 0.05  # seconds: the soundtrack dips under a kept clip without a click


@dataclass(frozen=True)
class ClipAudio:
    """A range of a file's sound, placed on the video's timeline: a video source's own, or a
    placed track's (job.audio.tracks)."""

    source: str
    source_start: float
    seconds: float  # of output time
    speed: float
    at: float  # output seconds
    volume: float
    keep: bool  # the soundtrack ducks under it


@dataclass(frozen=True)
class Normalize:
    """FFmpeg's dynaudnorm over the whole mix: each 500 ms frame's gain is smoothed over
    `window` frames (odd, 3 to 301) and never above `max_gain`."""

    window: int = 5
    max_gain: float = 30.0


@dataclass(frozen=True)
class AudioSpec:
    path: str | None
    volume: float
    fade_in: float
    fade_out: float
    duck: float = 0.25
    clips: tuple[ClipAudio, ...] = ()
    tracks: tuple[ClipAudio, ...] = ()  # job.audio.tracks, in order
    normalize: Normalize | None = None
    gain: float = 1.0  # the whole mix's level, set last

    @property
    def sources(self) -> tuple[str, ...]:
        """The files it reads that no segment shows: the soundtrack and the tracks'."""
        return tuple(dict.fromkeys(u for u in (self.path, *(t.source for t in self.tracks)) if u))


def decode_audio(uri: str, start: float, seconds: float, counter: ReadCounter | None = None) -> np.ndarray:
    """(2, n) float32 at 48 kHz: `seconds` from `start` (fewer where the file ends first)."""
    want = round(seconds * RATE)
    parts, have = [], 0
    with open_source(uri, counter) as f:
        try:
            with av.open(f, "r") as c:
                if not c.streams.audio:
                    raise MediaError(f"no audio stream in {uri}")
                stream = c.streams.audio[0]
                origin = c.start_time / av.time_base if c.start_time is not None else 0.0
                if start > 0:
                    c.seek(int((start + origin) / stream.time_base), stream=stream, backward=True)
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
                skip = None
                for frame in c.decode(stream):
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray()
                        if skip is None:  # the seek lands at or before `start`: drop what precedes it
                            t = (out.time if out.time is not None else start + origin) - origin
                            skip = max(0, round((start - t) * RATE))
                        take = samples[:, min(skip, samples.shape[1]):]
                        skip = max(0, skip - samples.shape[1])
                        parts.append(take[:, : want - have])
                        have += parts[-1].shape[1]
                    if have >= want:
                        break
        except av.FFmpegError as e:
            raise MediaError(f"cannot decode the sound of {uri}: {reason(e)}") from None
    return np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.float32)


@contextmanager
def _sound(uri: str, counter: ReadCounter | None):
    """The container of a file that must have sound; one line naming the file if it has none."""
    with open_source(uri, counter) as f:
        try:
            with av.open(f, "r") as c:
                if not c.streams.audio:
                    raise MediaError(f"no audio stream in {uri}")
                yield c
        except av.FFmpegError as e:
            raise MediaError(f"cannot read {uri}: {reason(e)}") from None


def check_audio(uri: str, counter: ReadCounter | None = None) -> None:
    """A soundtrack that cannot be played fails before any work."""
    with _sound(uri, counter):
        pass


def duration(uri: str, counter: ReadCounter | None = None) -> float:
    """A soundtrack's length in seconds, from its header (a folder's photos are fitted to it)."""
    with _sound(uri, counter) as c:
        stream = c.streams.audio[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        if c.duration is not None:
            return c.duration / av.time_base
    raise MediaError(f"{uri} does not say how long it is")


def _filtered(x: np.ndarray, filters: list[tuple[str, str]]) -> np.ndarray:
    """(2, n) float32 at 48 kHz through FFmpeg's audio filters, in order, to their end."""
    g = av.filter.Graph()
    chain = [g.add_abuffer(format="fltp", sample_rate=RATE, layout="stereo", time_base=Fraction(1, RATE)),
             *(g.add(name, args) for name, args in filters),
             g.add("aformat", "sample_fmts=fltp:channel_layouts=stereo"), g.add("abuffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    g.configure()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
    g.push(frame)
    g.push(None)
    out = []
    while True:
        try:
            out.append(g.pull().to_ndarray())
        except (av.error.EOFError, av.error.BlockingIOError):
            return np.concatenate(out, axis=1) if out else np.zeros((2, 0), np.float32)


def _tempo(x: np.ndarray, speed: float) -> np.ndarray:
    """Played `speed` times faster at the same pitch (FFmpeg's atempo, 0.5..2 per stage)."""
    stages, s = [], speed
    while s > 2.0:
        stages.append(2.0)
        s /= 2.0
    while s < 0.5:
        stages.append(0.5)
        s /= 0.5
    if abs(s - 1.0) > 1e-9:
        stages.append(s)
    if not stages or x.shape[1] == 0:
        return x
    return _filtered(x, [("atempo", f"{t:.6f}") for t in stages])


def _normalized(x: np.ndarray, norm: Normalize) -> np.ndarray:
    """The mix's loudness evened out (dynaudnorm, as Editly's audioNorm), the same length."""
    n = x.shape[1]
    out = _filtered(x, [("dynaudnorm", f"f=500:g={norm.window}:m={norm.max_gain:g}")])[:, :n]
    return np.pad(out, ((0, 0), (0, n - out.shape[1])))


def _ramp(n: int, length: float, rising: bool) -> np.ndarray:
    k = min(n, max(1, round(length * RATE)))
    return np.linspace(0.0, 1.0, k, dtype=np.float32) if rising else np.linspace(1.0, 0.0, k, dtype=np.float32)


def _soundtrack_gain(audio: AudioSpec, n: int) -> np.ndarray:
    gain = np.full(n, audio.volume, np.float32)
    if audio.fade_in > 0:
        r = _ramp(n, audio.fade_in, True)
        gain[: len(r)] *= r
    if audio.fade_out > 0:
        r = _ramp(n, audio.fade_out, False)
        gain[n - len(r):] *= r
    duck = np.ones(n, np.float32)
    for c in audio.clips:
        if c.keep:
            lo, hi = round(c.at * RATE), min(n, round((c.at + c.seconds) * RATE))
            duck[lo:hi] = audio.duck
    if (duck != 1).any():  # each step becomes a linear ramp: a moving average over DUCK_RAMP
        k = max(1, round(DUCK_RAMP * RATE))
        sums = np.cumsum(np.pad(duck, (k // 2 + 1, k - 1 - k // 2), mode="edge"), dtype=np.float64)
        duck = ((sums[k:] - sums[:-k]) / k).astype(np.float32)
    return gain * duck


def _place(out: np.ndarray, c: ClipAudio, counter: ReadCounter | None) -> None:
    """A placed sound added into `out` at its place, ramped in and out, cut at the video's end."""
    sound = _tempo(decode_audio(c.source, c.source_start, c.seconds * c.speed, counter), c.speed)
    at = round(c.at * RATE)
    sound = sound[:, : max(0, min(round(c.seconds * RATE), out.shape[1] - at))] * c.volume
    m = sound.shape[1]
    if m == 0:
        return
    rise, fall = _ramp(m, CLIP_FADE, True), _ramp(m, CLIP_FADE, False)
    sound[:, : len(rise)] *= rise
    sound[:, m - len(fall):] *= fall
    out[:, at: at + m] += sound


def mix(audio: AudioSpec, duration: float, counter: ReadCounter | None = None) -> np.ndarray | None:
    """(2, round(duration x 48000)) float32, or None when the video has no sound."""
    if not audio.path and not audio.clips and not audio.tracks:
        return None
    n = round(duration * RATE)
    out = np.zeros((2, n), np.float32)
    if audio.path:
        music = decode_audio(audio.path, 0.0, duration, counter)
        if music.shape[1] == 0:
            raise MediaError(f"no sound decoded from {audio.path}")
        reps = -(-n // music.shape[1])  # looped when shorter than the video
        out += np.tile(music, reps)[:, :n] * _soundtrack_gain(audio, n)
    for c in (*audio.clips, *audio.tracks):
        _place(out, c, counter)
    if audio.normalize is not None:
        out = _normalized(out, audio.normalize)
    return out * audio.gain if audio.gain != 1 else out
