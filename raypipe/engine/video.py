"""One video in the engine, the unit every way in uses: what a caller submits (a `VideoSpec`),
what it gets back (a `VideoHandle`: status, progress, cancel, result), and the video's state
while the engine holds it (`VideoRun`: its plan, cache look-up, detections, muxer, chunks).

A single render, a batch's row and (later) a request over HTTP are each a VideoSpec; the
steps from plan to published video are written once, here and in raypipe.engine.engine.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from omegaconf import DictConfig

from raypipe.detection.detections import Detections
from raypipe.engine.cache import Reuse
from raypipe.engine.executor import Muxer, Work
from raypipe.engine.report import Report
from raypipe.engine.streaming import SourceStream
from raypipe.engine.task import SegmentManifest
from raypipe.errors import Cancelled, CancelToken
from raypipe.plan.timeline import Plan, TaskPlan
from raypipe.storage import Storage


class VideoStatus(str, Enum):
    """Where a video is; the last three are ends. A str, so that JSON and logs show the name."""

    QUEUED = "queued"
    DETECTING = "detecting"
    RENDERING = "rendering"
    MUXING = "muxing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (VideoStatus.SUCCEEDED, VideoStatus.FAILED, VideoStatus.CANCELLED)


class VideoSpec(Protocol):
    """What a way in submits. `id` is unique among the engine's videos and names the folder of
    its chunks; `where` names it in errors ("row 3 (id a)", or "" for a job); `plan()`
    makes its config and runs the checks that read its sources (errors name it); `unload`
    lets go of both once the video ends, so that a long batch holds only the videos in flight."""

    id: str
    where: str
    run_dir: str  # the local folder of its run (its id names its report)
    reads: dict  # name -> ReadCounter: what its checks and plan read, for its report

    def load(self) -> DictConfig: ...

    def plan(self) -> Plan: ...

    def unload(self) -> None: ...


@dataclass(frozen=True)
class VideoEnd:
    """A video's end, as its handle gives it: the report where it succeeded, else the error."""

    status: VideoStatus
    report: Report | None = None
    error: BaseException | None = None
    frames: int = 0  # in the published video
    seconds: float = 0.0
    plan: Plan | None = None  # where it succeeded: what made it, for the caller's look
    detections: Detections | None = None
    info: dict | None = None


class Stages:
    """Seconds per named stage of one video (report.json's `stages`)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 3)


class VideoHandle:
    """The caller's view of a submitted video, safe from any thread. Progress is frames done
    (chunks muxed-ready, cached ones included) of the video's total, and never goes back."""

    def __init__(self, spec_id: str, cancel: CancelToken):
        self.id = spec_id
        self._cancel = cancel
        self._status = VideoStatus.QUEUED
        self._frames = self._total = 0
        self._end: Future = Future()
        self._lock = threading.Lock()
        self._listeners: list = []
        self._end_listeners: list = []

    @property
    def status(self) -> VideoStatus:
        return self._status

    def progress(self) -> tuple[int, int]:
        """(frames done, frames in all; 0 until planned)."""
        with self._lock:
            return self._frames, self._total

    def cancel(self, reason: str = "cancelled") -> bool:
        """Asks the engine to stop this video alone; False where it has already ended."""
        if self._status.ended:
            return False
        self._cancel.cancel(Cancelled(reason))
        return True

    def done(self) -> bool:
        return self._end.done()

    def result(self, timeout: float | None = None) -> VideoEnd:
        return self._end.result(timeout)

    def on_change(self, listener) -> None:
        """`listener(handle)` hears each change of status or progress (on the engine's threads)."""
        self._listeners.append(listener)

    def on_end(self, listener) -> None:
        """`listener(handle, end)` hears the video's end, once, on the engine's thread; what it
        raises is the engine's error (a Future's callbacks would only log it)."""
        self._end_listeners.append(listener)

    # --- the engine's side ----------------------------------------------------------------

    def _set(self, status: VideoStatus | None = None, frames: int | None = None, total: int | None = None) -> None:
        with self._lock:
            if status is not None and not self._status.ended:
                self._status = status
            if total is not None:
                self._total = total
            if frames is not None:
                self._frames = max(self._frames, min(frames, self._total or frames))
        for listener in list(self._listeners):
            listener(self)

    def _finish(self, end: VideoEnd) -> None:
        self._set(end.status)
        if not self._end.done():
            self._end.set_result(end)
            for listener in self._end_listeners:
                listener(self, end)


@dataclass
class VideoRun:
    """A video while the engine holds it: everything it will let go of when it ends."""

    spec: VideoSpec
    handle: VideoHandle
    cancel: CancelToken
    store: Storage  # where its chunks outside the cache go (its `segments` folder)
    stages: Stages = field(default_factory=Stages)
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    plan: Plan | None = None
    reuse: Reuse | None = None
    looks: dict = field(default_factory=dict)  # source -> its detector.Look, made ahead
    stream: SourceStream | None = None  # its detections as each source is in (one video's engine)
    detected: Future = field(default_factory=Future)  # (Detections, info) once found
    moved: dict = field(default_factory=dict)  # its local files -> where they were staged for Ray's nodes
    muxer: Muxer | None = None
    split: int | None = None  # frames per task
    cached: tuple[SegmentManifest, ...] = ()
    manifests: list[SegmentManifest] = field(default_factory=list)
    retries: list[dict] = field(default_factory=list)
    left: int = 0  # tasks not yet done
    in_flight: int = 0  # tasks handed to the executor whose outcome has not come back
    failed: bool = False
    admitted: bool = False
    detections_held: object = None  # what the executor was given, released at the end
    rendering_started: float = 0.0
    mux_started: float = 0.0
    frames_rendered: int = 0

    order: tuple[str, ...] = ()  # with a stream: its sources in the order its tasks need them
    repointed: bool = False  # its plan reads the staged copies (`moved`)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def cfg(self) -> DictConfig:
        return self.spec.load()

    def repoint(self) -> None:
        """Its plan reads the staged copies; its chunks keep their keys (content, not place)."""
        self.plan, self.reuse = self.plan.with_sources(self.moved), self.reuse.moved(self.moved)
        self.repointed = True

    def detections(self) -> Detections:
        return self.detected.result()[0]

    def works(self, tasks: list[TaskPlan], detections, first_id: int, nice: int = 0) -> list[Work]:
        """Its tasks as the loop takes them, each to the cache or its own storage."""
        return [Work(first_id + i, t, detections, self.plan.encode, *self.reuse.target(t), tag=self.id, nice=nice)
                for i, t in enumerate(tasks)]

    def chunk_done(self, m: SegmentManifest) -> bool:
        """One more chunk; True once it was the last."""
        self.manifests.append(m)
        self.muxer.add(m)
        self.frames_rendered += m.frames
        self.left -= 1
        self.handle._set(frames=sum(c.frames for c in self.cached) + self.frames_rendered)
        return self.left == 0
