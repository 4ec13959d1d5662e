"""The head start: the driver renders the costliest task on its own thread while its
embedded Ray starts, and Ray takes every other. Ray's 2-4 s start leaves about a core idle,
and the rest of the render would wait for it anyway. A composition of the two executors:
neither knows of the other."""
from __future__ import annotations

from raypipe.engine.executor import Executor, ExecutorStats, Outcome, Work
from raypipe.engine.on_ray import RayExecutor
from raypipe.engine.threads import ThreadExecutor

# While the driver's thread still renders, each executor is waited on this long in turn.
_POLL_S = 0.05


class HeadStart(Executor):
    name = "threads+ray"

    def __init__(self, here: ThreadExecutor, ray: RayExecutor):
        self.here, self.ray = here, ray

    def start(self) -> None:
        self.ray.start()

    @property
    def slots(self) -> float:
        return self.ray.slots

    def submit(self, work: Work) -> None:
        if not self.ray.up and self.here.idle:
            self.here.submit(work)
        else:
            self.ray.submit(work)  # held until Ray is up

    def wait(self, timeout: float) -> list[Outcome]:
        if self.here.idle:
            return self.ray.wait(timeout)
        outcomes = self.here.wait(_POLL_S)
        return outcomes + self.ray.wait(0 if outcomes else _POLL_S)

    def progress(self) -> tuple[int, int]:
        here, busy_here = self.here.progress()
        there, busy_there = self.ray.progress()
        return here + there, max(busy_here, busy_there)  # the driver's node is Ray's head node

    def cancel(self) -> None:
        self.here.cancel()
        self.ray.cancel()

    def muxer(self, total_frames, duration, audio, output, codec):
        return self.ray.muxer(total_frames, duration, audio, output, codec)

    reads_driver_disk = False

    @property
    def nodes(self) -> int:
        return self.ray.nodes

    def drop(self, tag) -> None:
        self.here.drop(tag)
        self.ray.drop(tag)

    def release(self, detections) -> None:
        self.ray.release(detections)

    def stats(self) -> ExecutorStats:
        return self.ray.stats()

    def close(self) -> None:
        self.here.close()
        self.ray.close()
