"""Editly's frames, laid on raypipe's timeline.

Editly overlaps clip i and clip i+1 by their transition: S_i frames of the one are blended
with the first S_i of the next, and the video has sum(N_i) - sum(S_i) frames
(editly.md, section 1). raypipe puts a transition in the tail of the segment it leaves and
starts the next shot where the transition starts, so segment i is clip i less the frames
already shown under the transition before it: N_i - S_(i-1) frames, its transition S_i.
The segments then add up to Editly's count exactly, and every shot spans its clip's N_i.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


def js_round(x: Fraction) -> int:
    """JavaScript's Math.round: halves round up."""
    return math.floor(x + Fraction(1, 2))


@dataclass(frozen=True)
class ClipFrames:
    first: int  # the clip's first frame in the video (Editly's global frame)
    frames: int  # N_i: the clip's own frames
    lead: int  # S_(i-1): its first frames, shown under the transition before it
    blend: int  # S_i: its last frames, shown under its transition into the next

    @property
    def segment_frames(self) -> int:
        return self.frames - self.lead


def clip_frames(seconds: list[Fraction], transitions: list[Fraction], fps: Fraction) -> list[ClipFrames]:
    """Each clip's frames for durations d_i and asked transition durations t_i (the last one's
    is ignored), clamped as Editly clamps them: at most half of either neighbour."""
    counts = [js_round(d * fps) for d in seconds]
    blends = [min(counts[i] // 2, counts[i + 1] // 2,
                  js_round(min(seconds[i] / 2, seconds[i + 1] / 2, transitions[i]) * fps))
              for i in range(len(seconds) - 1)] + [0]
    out, first = [], 0
    for i, n in enumerate(counts):
        out.append(ClipFrames(first, n, blends[i - 1] if i else 0, blends[i]))
        first += n - blends[i]
    return out


def total_frames(clips: list[ClipFrames]) -> int:
    return sum(c.frames for c in clips) - sum(c.blend for c in clips)


def window(start: Fraction, stop: Fraction, seconds: Fraction, frames: int) -> tuple[int, int]:
    """The clip frames [k0, k1) in which a layer from `start` to `stop` is drawn: frame k is at
    t = d * k / N, drawn where start <= t <= stop."""
    k0 = math.ceil(start * frames / seconds)
    k1 = min(frames - 1, math.floor(stop * frames / seconds))
    return k0, k1 + 1
