"""Where a render's tasks run. The task loop (raypipe.engine.loop) is written once against
this interface; the driver's threads (threads.py) and Ray's workers (on_ray.py) implement
it, and the head start (headstart.py) composes the two.

An executor takes `Work` (a task and what it needs), runs it, and hands back an `Outcome`
per task as it completes. It says where each task ran (`SegmentManifest.executor`), how far
the tasks in flight have got, and what only it can know (`ExecutorStats`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from raypipe.engine.task import SegmentManifest
from raypipe.media import EncodeSpec
from raypipe.plan.timeline import TaskPlan
from raypipe.storage import Storage


@dataclass(frozen=True)
class Streamed:
    """A task's detections while the render's are still being found (raypipe.engine.streaming):
    `own` holds the sources the task reads, as soon as they are detected, for the driver's
    threads; `every` holds all of the render's, once all are: the one copy an object store
    is given, whichever task it is for."""

    own: Future
    every: Future


def ready(detections, own: bool):
    """The Detections a task reads, waited for: its own sources (`own`, where they need not
    be shared) or the render's one object of all of them."""
    if isinstance(detections, Streamed):
        detections = detections.own if own else detections.every
    return detections.result() if isinstance(detections, Future) else detections


@dataclass(frozen=True)
class Work:
    """One task as an executor takes it: its frames, the detections it reads, how to encode,
    and where its chunk goes."""

    id: int  # unique in one loop: progress and outcomes are keyed by it
    task: TaskPlan
    # Detections, a Future of them, or Streamed: the driver detects while Ray starts, and the
    # first tasks render as soon as their sources are in. An executor shares one copy among the
    # works given one.
    detections: Any
    encode: EncodeSpec
    store: Storage
    name: str
    tag: Any = None  # whose task it is (a batch's video), handed back with its outcome
    attempt: int = 1
    nice: int = 0  # the niceness it runs at, at least (raypipe.engine.task.lower_priority)


@dataclass(frozen=True)
class Outcome:
    work: Work
    manifest: SegmentManifest | None = None
    error: BaseException | None = None


class TaskLost(Exception):
    """The task's worker or node died under it: a system failure, worth running again (our
    own errors never are). `kind` is the failure's name (Ray's error class)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(f"{kind}: {reason}")
        self.kind, self.reason = kind, reason


@dataclass
class ExecutorStats:
    """What only the executor can know, for the report; None where it did not run."""

    ray_started: bool = False
    # Nodes that held a copy of each detections object put (Ray's object store): one per node
    # that ran tasks, however many it ran.
    detections_held_by: list[str] | None = None
    object_store_bytes: int | None = None  # what this render put into Ray's object store
    muxer_restarts: int = 0
    extra: dict = field(default_factory=dict)


class Muxer(Protocol):
    def add(self, manifest: SegmentManifest) -> None: ...

    def finish(self) -> dict: ...

    def abandon(self) -> None:
        """The video will not be finished (its row failed): what the muxer holds goes now."""


class Executor(ABC):
    """Runs tasks; not thread-safe (the loop drives it from one thread). What it can do is
    said by its properties, so that no caller tests its type or name."""

    name: str
    # Whether its tasks read the driver's disk (else a job's local files are staged into storage).
    reads_driver_disk: bool = True

    @property
    def nodes(self) -> int:
        """The machines its tasks run on."""
        return 1

    def detector_pool(self, settings, actors: int = 1, halt=None):
        """A pool of `actors` detector actors (closed by its `close`), where this executor can
        host them (Ray's nodes, GPUs); an executor that cannot raises NotImplementedError."""
        raise NotImplementedError(f"the {self.name} executor hosts no detector actors")

    def drop(self, tag) -> None:
        """Stops the work of one video (`Work.tag`) in flight, leaving the rest running; its
        outcomes still come back, as errors or manifests, for the caller to count."""

    def start(self) -> None:
        """Starts what the tasks need (Ray), blocking until it is up; work submitted before
        waits for it. The loop starts its executor once it has handed it the first works."""

    @property
    @abstractmethod
    def slots(self) -> float:
        """Tasks it runs side by side (blocks until that is known)."""

    @abstractmethod
    def submit(self, work: Work) -> None:
        """Queues the work; never blocks on it."""

    @abstractmethod
    def wait(self, timeout: float) -> list[Outcome]:
        """Outcomes of work completed since the last call, waiting up to `timeout` for one."""

    @abstractmethod
    def progress(self) -> tuple[int, int]:
        """(frames rendered by the work submitted so far, nodes with a task running)."""

    @abstractmethod
    def cancel(self) -> None:
        """Stops all work in flight and waits for it to unwind (its partial files removed)."""

    @abstractmethod
    def muxer(self, total_frames: int, duration: float, audio, output: str, codec: str) -> Muxer:
        """The muxer for one video, where this executor runs it."""

    def release(self, detections) -> None:
        """The works given these detections are done: what holds them for the tasks may go."""

    def stats(self) -> ExecutorStats:
        return ExecutorStats()

    def close(self) -> None:
        """Releases what `start` took (Ray's processes)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
