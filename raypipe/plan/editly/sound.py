"""Editly's sound as a job's (editly.md, section 9): the clips' own (with keepSourceAudio, each
clip's video and audio layers that have no start or stop), the soundtrack (audioFilePath),
audioTracks and detached-audio layers, at the levels Editly's amix filters give them, with
audioNorm and outputVolume on the mix.

amix normalises: each input is scaled by its weight over the sum of the weights. In a clip,
its sources are mixed so (one source alone is as it is); the clips' sound is then one input of
the final mix, beside every arbitrary stream, all of which count throughout (Editly pads
them). Without an arbitrary stream there is no final mix: the clips' sound is as it is."""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from raypipe.errors import JobError, MediaError
from raypipe.media.audio import duration as audio_seconds
from raypipe.plan.editly.fields import Fields, Once, Reads
from raypipe.plan.editly.layers import is_picture
from raypipe.plan.editly.spec import Clip, Layer, Media, cut, existing, resolve
from raypipe.plan.editly.timing import ClipFrames

_DB = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*dB\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Heard:
    """A sound source of a clip or of the spec, before the final mix's scaling."""

    where: str  # the spec's path of what asked for it
    path: str
    start: float  # output seconds
    cut_from: float
    cut_to: float | None
    speed: float
    weight: float

    def track(self, scale: float) -> dict:
        return {"path": self.path, "start": round(self.start, 6), "cut_from": round(self.cut_from, 6),
                "cut_to": None if self.cut_to is None else round(self.cut_to, 6),
                "volume": round(self.weight * scale, 6), "speed": round(self.speed, 6)}


def _weight(given: Reads, key: str) -> float:
    """An amix weight (mixVolume, clipsAudioVolume, backgroundAudioVolume): 1 where unset."""
    return given.number(key, 1.0, low=0, written=True)


def _placed(given: Reads, path: str, origin: float) -> Heard:
    """An arbitrary stream: its file from cutFrom to cutTo (or its end), from `start` seconds
    after `origin` (Editly's atrim, then adelay)."""
    cut_from, cut_to = given.number("cutFrom", 0.0, low=0), given.number("cutTo", low=0)
    if cut_to is not None and not cut_to > cut_from:
        raise JobError(given.path("cutTo"), f"must be after cutFrom ({cut_from:g} s)")
    return Heard(given.where, path, origin + given.number("start", 0.0, low=0), cut_from, cut_to, 1.0,
                 _weight(given, "mixVolume"))


def output_volume(value) -> float:
    """outputVolume as FFmpeg's volume filter reads it: a factor, or decibels ("-10dB")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and (m := _DB.fullmatch(value)):
        return 10 ** (float(m.group(1)) / 20)
    try:
        factor = float(value) if isinstance(value, str) else -1.0
    except ValueError:
        factor = -1.0
    if factor < 0:
        raise JobError("outputVolume", f"must be a factor >= 0 or decibels such as \"-10dB\" (got {value!r})")
    return factor


def normalize(spec: dict) -> dict:
    """audioNorm as job.audio.normalize: dynaudnorm's window (gaussSize) and maxgain."""
    norm = Fields("", spec).mapping("audioNorm")
    if not norm.get("enable"):
        return {}
    size, gain = norm.get("gaussSize", 5), norm.get("maxGain", 30)
    if isinstance(size, bool) or not isinstance(size, int) or not 3 <= size <= 301:
        raise JobError("audioNorm.gaussSize", f"must be a whole number from 3 to 301 (got {size!r})")
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 1 <= gain <= 100:
        raise JobError("audioNorm.maxGain", f"must be a number from 1 to 100 (got {gain!r})")
    # FFmpeg makes an even window odd by adding one.
    return {"normalize": {"enable": True, "window": size | 1, "max_gain": float(gain)}}


class Sound:
    """The spec's sound: `level(where)` for the clip's own video (its segment's audio_volume),
    `job_audio()` for the rest."""

    def __init__(self, spec: dict, base: Path, clips: list[Clip], frames: list[ClipFrames], fps: Fraction,
                 media: Media, once: Once):
        self.spec, self.base, self.media, self.once = spec, base, media, once
        self.root = Fields("", spec)
        starts = [float(Fraction(f.first) / fps) for f in frames]
        self.arbitrary = [self._track(f"audioTracks[{k}]", t) for k, t in enumerate(self._tracks())]
        self.arbitrary += [self._detached(x, s) for c, s in zip(clips, starts) for x in c.layers
                           if x.type == "detached-audio"]
        weights = [_weight(self.root, "clipsAudioVolume"),
                   *((_weight(self.root, "backgroundAudioVolume"),) if spec.get("audioFilePath") else ()),
                   *(h.weight for h in self.arbitrary)]
        self.final = len(weights) > 1  # the clips' sound and at least one arbitrary stream
        total = sum(weights)
        self.scale = (1 / total if total > 0 else 0.0) if self.final else 1.0
        self.clips_level = weights[0] * self.scale if self.final else 1.0
        self.levels: dict[str, float] = {}  # a clip's own video's level, by its path in the spec
        self.own: list[Heard] = []  # the clips' other sources, levels included in their weights
        if spec.get("keepSourceAudio"):
            for c, s in zip(clips, starts):
                self._clip(c, s)

    def _tracks(self) -> list:
        tracks = self.spec.get("audioTracks") or []
        if not isinstance(tracks, list):
            raise JobError("audioTracks", "must be a list of {path, mixVolume, cutFrom, cutTo, start}")
        return tracks

    def _track(self, where: str, track) -> Heard:
        if not isinstance(track, dict) or not track.get("path"):
            raise JobError(where, "a track is an object with a path")
        given = Fields(where, track)
        return _placed(given, existing(given.path("path"), resolve(self.base, given.string("path"))), 0.0)

    def _detached(self, layer: Layer, clip_start: float) -> Heard:
        """It starts at its clip's start plus its own, and plays on past the clip."""
        return _placed(layer, layer.props["path"], clip_start)

    def _clip(self, clip: Clip, start: float) -> None:
        """The clip's sources, mixed by their weights (one alone as it is), each cut and retimed
        to fill the clip as Editly's are."""
        found = []
        for i, layer in enumerate(clip.layers):
            if layer.type not in ("video", "audio") or layer.props.get("start") or layer.props.get("stop") is not None:
                continue
            heard = self._source(layer, clip, start)
            if heard is None:
                continue
            if not 0.5 <= heard.speed <= 100:  # FFmpeg's atempo range: Editly leaves it silent
                self.once.warn(f"tempo {layer.where}", "%s: plays its sound at %gx, outside 0.5..100x; silent, as in "
                                                       "Editly", layer.where, heard.speed)
                continue
            found.append((i, heard))
        total = sum(h.weight for _, h in found)
        for i, heard in found:
            share = 1.0 if len(found) == 1 else heard.weight / total if total > 0 else 0.0
            level = share * self.clips_level
            if i == 0 and clip.layers[0].type == "video" and is_picture(clip.layers[0]):
                self.levels[heard.where] = level  # the segment's own clip: its sound is the segment's
            else:
                self.own.append(Heard(heard.where, heard.path, start, heard.cut_from, heard.cut_to, heard.speed,
                                      level))

    def _source(self, layer: Layer, clip: Clip, start: float) -> Heard | None:
        """A video layer's range (None where it has no sound), or an audio layer's: from cutFrom
        to cutTo, which defaults to the clip's length on from cutFrom; both within the file."""
        seconds = float(clip.seconds)
        path = layer.props["path"]
        if layer.type == "video":
            info = self.media.info(layer.where, path)
            if not info.audio:
                return None
            lo, hi = (float(x) for x in cut(layer, info))
        else:
            try:
                length = audio_seconds(path)
            except MediaError as e:
                raise JobError(f"{layer.where}.path", str(e)) from None
            lo = min(layer.number("cutFrom", 0.0, low=0), length)
            hi = min(max(layer.number("cutTo", low=0) or lo + seconds, lo), length)
            if not lo < hi:
                raise JobError(f"{layer.where}.cutTo", f"must be after cutFrom ({lo:g} s), within the file "
                                                       f"({length:.2f} s)")
        if layer.type == "video" and not clip.timed:
            # At its own pace, as its picture plays (layers.video), heard while its clip lasts.
            speed, hi = 1.0, min(hi, lo + seconds)
        else:
            speed = (hi - lo) / seconds
            # Editly retimes only beyond 1%: nearer, the cut plays as it is for the clip's length.
            speed = 1.0 if abs(speed - 1) <= 0.01 else speed
        return Heard(layer.where, path, start, lo, hi, speed, _weight(layer, "mixVolume"))

    def level(self, where: str) -> float:
        """The level of a clip's own video's sound; 0: not heard."""
        return self.levels.get(where, 0.0)

    def job_audio(self) -> dict:
        spec, audio, soundtrack = self.spec, {}, []
        if spec.get("audioFilePath"):
            level = _weight(self.root, "backgroundAudioVolume") * self.scale
            if spec.get("loopAudio"):  # the soundtrack, which raypipe loops or trims to the video
                audio.update({"path": self._soundtrack(), "volume": round(level, 6)})
            else:  # once from the start, then silence (a track is not looped), cut at the video's end
                soundtrack = [Heard("audioFilePath", self._soundtrack(), 0.0, 0.0, None, 1.0, level).track(1.0)]
        tracks = [h.track(1.0) for h in self.own] + soundtrack + [h.track(self.scale) for h in self.arbitrary]
        tracks = [t for t in tracks if t["volume"] > 0]  # a weight of 0 is in the sum, and silent
        if tracks:
            audio["tracks"] = tracks
        if self.final:  # audioNorm and outputVolume act on the final mix only
            audio.update(normalize(spec))
            if spec.get("outputVolume") is not None:
                audio["gain"] = round(output_volume(spec["outputVolume"]), 6)
        return audio

    def _soundtrack(self) -> str:
        """audioFilePath, there and readable as sound."""
        uri = existing("audioFilePath", resolve(self.base, self.root.string("audioFilePath")))
        try:
            audio_seconds(uri)
        except MediaError as e:
            raise JobError("audioFilePath", str(e)) from None
        return uri
