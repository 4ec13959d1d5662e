"""A layer as planned: what it draws, over which global frames, where, and how it comes and goes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

from raypipe.frames.layers.fixed import overlaps
from raypipe.frames.layers.motion import ANIMATIONS, Box, Pose


@dataclass(frozen=True)
class Motion:
    """An entrance or an exit: an animation of ANIMATIONS over `seconds`."""

    type: str
    seconds: float


class FaceNotes:
    """A layer's memo of the segments in which it covers a face, said in one warning line once
    every segment it is over has been placed (one by one, as their detections come in)."""

    def __init__(self):
        self.placed: set[int] = set()
        self.covering: set[int] = set()

    def place(self, segment: int, covers: bool, over: tuple[int, ...]) -> list[int]:
        """The segments to name in the warning, once the last of `over` is placed (every
        segment placed, with no `over` known); none before, and none again after."""
        if segment in self.placed:
            return []
        self.placed.add(segment)
        if covers:
            self.covering.add(segment)
        return sorted(self.covering) if self.placed.issuperset(over) or not over else []


@dataclass(frozen=True)
class Layer:
    """`kind` (a TextLayer, ImageLayer, BoxLayer, VideoLayer or CaptionLayer) over global
    frames [start, end). Its pose at a frame is a function of that frame's index alone."""

    where: str = field(compare=False)  # the job's key, for errors and warnings; not part of its pixels
    kind: object
    start: int
    end: int
    fps: Fraction
    position: str = "center"
    offset: tuple[float, float] = (0.0, 0.0)
    margin: float = 0.05
    opacity: float = 1.0
    avoid: bool = False  # kept clear of the subject and the faces, or the render fails
    enter: Motion | None = None
    leave: Motion | None = None
    # The segments it is over, which its warning waits for; not part of its pixels.
    segments: tuple[int, ...] = field(default=(), compare=False)
    faces: FaceNotes = field(default_factory=FaceNotes, compare=False, repr=False)  # a memo: one warning line

    @property
    def keeps_clear(self) -> bool:
        return self.avoid or self.position == "auto"

    @property
    def placed_by_subject(self) -> bool:
        """Whether where it goes depends on the detections (a caption's always does)."""
        return self.keeps_clear or self.kind.follows_subject

    def on(self, frame: int) -> bool:
        return self.start <= frame < self.end

    def pose(self, frame: int, box: Box) -> Pose:
        """How it is drawn at global frame `frame`, resting at `box`: at its opacity, and
        partway through its entrance or its exit, timed at the frame's middle."""
        t = (frame - self.start + 0.5) / float(self.fps)
        remaining = (self.end - self.start) / float(self.fps) - t
        pose = Pose(opacity=self.opacity)
        for motion, left, entering in ((self.enter, t, True), (self.leave, remaining, False)):
            if motion is not None and motion.seconds > 0:
                e = min(max(left / motion.seconds, 0.0), 1.0)
                pose = pose.then(ANIMATIONS[motion.type].pose(e, box, entering))
        return pose

    def place(self, subjects, faces, out_w: int, out_h: int, segment: int) -> tuple[int, tuple[int, int]]:
        """Which of its bitmaps it is drawn with over `segment`, and where."""
        return self.kind.place(self, subjects, faces, out_w, out_h, segment)

    def covers(self, variant: int, at: tuple[int, int], boxes) -> bool:
        h, w = self.kind.shapes[variant]
        return overlaps((at[0], at[1], at[0] + w, at[1] + h), boxes)

    def keyed(self, origin: int, identify) -> Layer:
        """What decides its pixels in a chunk's key: its frames counted from `origin` (a
        segment's first), its files by content."""
        return dataclasses.replace(self, start=self.start - origin, end=self.end - origin,
                                   kind=self.kind.renamed(identify), faces=FaceNotes())
