"""A render's detections as they are found, source by source: a task on the driver's threads
starts as soon as the sources it reads are detected, not once all of them are. The demo's
first frame used to wait for all of its detection (3.8 s on 2 cores).

Each segment gets a Detections of its own sources (shared by the segments that read the same
ones). A caption (or a layer kept clear of the subject) that cannot keep clear of the faces
must stop the render before any frame, so the sources of the segments under them are detected
first, and no segment goes before every one is placed: a job with a title caption streams
after its first sources; the demo, whose captions read every one of its sources, does not. A
task on Ray waits for the render's one object of all the detections instead: the object store
holds a single copy, and a small one would be inlined into every task's arguments rather than
mapped.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future

from raypipe.detection.detections import Detections
from raypipe.detection.detector import expand
from raypipe.engine.task import check_caption
from raypipe.plan.timeline import Plan, SegmentPlan, TaskPlan


class SourceStream:
    def __init__(self, plan: Plan, smoothing: float):
        self.plan, self.smoothing = plan, smoothing
        self._subjects: dict[str, object] = {}  # source -> its subject, or keyframes
        self._packed: dict[tuple[str, ...], Detections] = {}
        self._segments: dict[int, Future] = {}
        self._unplaced = {seg.index for seg in plan.segments if seg.placed}
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def order(self, tasks: list[TaskPlan] | None, keyframe_rate: float) -> tuple[str, ...]:
        """The plan's sources in the order they are detected: the captioned segments' first (no
        segment goes before them), then the cheapest first (a still is one image, a clip one
        per keyframe), so that the threads have tasks to render as early as can be (a task
        goes once its sources are in, whatever its place in the queue); ties as the tasks, in
        the order they are submitted, first read them."""
        segments = [t.segment for t in tasks or ()] + list(self.plan.segments)
        needed = list(dict.fromkeys(u for seg in segments for u in seg.sources))
        ranges = self.plan.video_ranges()

        def images(u: str) -> float:
            return 1 + keyframe_rate * sum(b - a for a, b in ranges.get(u, ()))

        gate = {u for seg in self.plan.segments if seg.placed for u in seg.sources}
        return tuple(sorted(needed, key=lambda u: (u not in gate, images(u), needed.index(u))))

    def for_segment(self, seg: SegmentPlan) -> Future:
        """The Detections of the segment's sources, once they are in and every caption is placed."""
        with self._lock:
            if seg.index not in self._segments:
                self._segments[seg.index] = Future()
                self._settle()
            return self._segments[seg.index]

    def heard(self, uri: str, compacted) -> None:
        """detect_all's `on_source`: one more source is in."""
        subject = expand({uri: compacted})[uri]
        with self._lock:
            self._subjects[uri] = subject
            self._settle()

    def fail(self, error: BaseException) -> None:
        """Detection failed: every task still waiting fails with its error."""
        with self._lock:
            self._error = error
            self._settle()

    def _settle(self) -> None:
        if self._error is None:
            try:
                for index in sorted(self._unplaced):
                    seg = self.plan.segments[index]
                    if self._has(seg):
                        check_caption(seg, self._of(seg), self.plan.encode)
                        self._unplaced.discard(index)
            except BaseException as e:  # the render's error: every task waiting fails with it
                self._error = e
        for index, future in self._segments.items():
            seg = self.plan.segments[index]
            if future.done():
                continue
            if self._error is not None:
                future.set_exception(self._error)
            elif not self._unplaced and self._has(seg):
                future.set_result(self._of(seg))

    def _has(self, seg: SegmentPlan) -> bool:
        return all(u in self._subjects for u in seg.sources)

    def _of(self, seg: SegmentPlan) -> Detections:
        if seg.sources not in self._packed:
            self._packed[seg.sources] = Detections.pack({u: self._subjects[u] for u in seg.sources},
                                                        smoothing=self.smoothing)
        return self._packed[seg.sources]
