"""Ray's workers as an executor: one Ray task per frame range, the videos' muxers in one actor
on the driver's node, detections put once into the object store and mapped zero-copy by the tasks.

Tasks submitted before Ray is up wait for `start`; detections may be given as a Future (the
driver detects on a thread while Ray starts) and are put once, when a task first needs them.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import ray
from omegaconf import DictConfig, OmegaConf

from raypipe.detection import detector
from raypipe.engine.detector_pool import ACTOR_RESTARTS, DetectorPool
from raypipe.engine.executor import Executor, ExecutorStats, Outcome, TaskLost, Work, ready
from raypipe.engine.muxer_link import Deferred, MuxerHost, MuxerLink
from raypipe.engine.progress import Board, Reporter
from raypipe.engine.ray_start import get, here, start_ray
from raypipe.engine.task import SegmentManifest, render_task
from raypipe.errors import RaypipeError
from raypipe.plan.cost import local_slots

log = logging.getLogger("raypipe")


class RayExecutor(Executor):
    name = "ray"
    reads_driver_disk = False  # a cluster's nodes read storage; staged where storage.root is set

    def __init__(self, rc: DictConfig, stages=None):
        self.rc, self._stages = rc, stages
        self._owns_ray = not ray.is_initialized()
        self._up = not self._owns_ray
        self._stopped = False
        self._queued: list[Work] = []  # submitted before Ray was up
        self._pending: dict = {}  # ref -> Work
        # id(detections) -> (them, their one ref): held, so that no other object takes the id while the ref is kept
        self._refs: dict[int, tuple] = {}
        self._put_bytes = 0
        self._board = self._remote = None
        self._muxers = MuxerHost()
        self._muxer_restarts = 0

    def start(self) -> None:
        """Starts an embedded Ray, or joins the cluster at ray.address; blocks until it is up.
        Called again, it does nothing. Ray must start on the main thread: a Ray initialized on
        another thread cannot be used from this one (the process exits)."""
        if not self._up:
            t0 = time.perf_counter()
            start_ray(self.rc)
            self._up = True
            if self._stages is not None:
                self._stages.seconds["ray_start"] = round(time.perf_counter() - t0, 3)
        if self._remote is None:
            self._remote = ray.remote(render_task).options(num_cpus=self.rc.segment_cpus,
                                                           scheduling_strategy=self.rc.segment_strategy, max_retries=0)
            self._board = ray.remote(num_cpus=0, scheduling_strategy=here())(Board).remote()
        queued, self._queued = self._queued, []
        for work in queued:
            self.submit(work)

    @property
    def up(self) -> bool:
        return self._up

    @property
    def slots(self) -> float:
        if not self._up and self.rc.address is None:  # an embedded Ray: its CPUs are known now
            return local_slots(self.rc)
        self.start()
        return ray.cluster_resources().get("CPU", 1.0) / self.rc.segment_cpus

    @property
    def nodes(self) -> int:
        """The nodes of the Ray it runs on that are alive (1: this machine alone)."""
        self.start()
        return sum(1 for n in ray.nodes() if n["Alive"])

    def _ref(self, detections):
        """The object store's one copy of these detections (a Future: once it has them)."""
        detections = ready(detections, own=False)
        key = id(detections)
        if key not in self._refs:
            self._refs[key] = (detections, ray.put(detections))
            self._put_bytes += detections.nbytes
        return self._refs[key][1]

    def release(self, detections) -> None:
        self._refs.pop(id(detections), None)  # the last handle: Ray frees the object

    def submit(self, work: Work) -> None:
        if self._remote is None:
            self._queued.append(work)
            return
        ref = self._remote.remote(work.task, self._ref(work.detections), work.encode, work.store, work.name,
                                  report=Reporter(self._board, work.id), nice=work.nice)
        self._pending[ref] = work

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._pending:
            return []
        refs = list(self._pending)
        done, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if done and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            done += more
        outcomes = []
        for ref in done:
            work = self._pending.pop(ref)
            try:
                m: SegmentManifest = get(ref)
            except (ray.exceptions.RayTaskError, ray.exceptions.TaskCancelledError, RaypipeError) as e:
                outcomes.append(Outcome(work, error=e))
            except ray.exceptions.RayError as e:  # the worker or its node died under it
                outcomes.append(Outcome(work, error=TaskLost(type(e).__name__, str(e).strip().splitlines()[0])))
            else:
                self._board.done.remote(work.id, m.frames)
                outcomes.append(Outcome(work, manifest=replace(m, executor="ray")))
        return outcomes

    def progress(self) -> tuple[int, int]:
        if self._board is None:
            return 0, 0
        return ray.get(self._board.snapshot.remote())

    def drop(self, tag) -> None:
        """Politely (a task unwinds and removes its temporary files); its outcome comes back."""
        for ref, work in list(self._pending.items()):
            if work.tag == tag:
                ray.cancel(ref)
        self._queued = [w for w in self._queued if w.tag != tag]

    def cancel(self) -> None:
        """Politely first (a task unwinds and removes its temporary files), then by force, so
        that no chunk is written after the caller removes them."""
        refs = list(self._pending)
        self._pending.clear()
        self._queued.clear()
        if not refs:  # nothing in flight (Ray may not even be up: a call now would start one)
            return
        for ref in refs:
            ray.cancel(ref)
        _, stuck = ray.wait(refs, num_returns=len(refs), timeout=10)
        for ref in stuck:
            ray.cancel(ref, force=True)
        ray.wait(stuck, num_returns=len(stuck), timeout=30)

    def muxer(self, total_frames, duration, audio, output, codec):
        """The muxer actor; made once Ray is up (chunks done before that wait for it)."""
        return Deferred(self, (total_frames, duration, audio, output, codec))

    def _muxer_now(self, *args) -> MuxerLink:
        self.start()
        return MuxerLink(self._muxers, *args, on_restart=self._muxer_restarted)

    def _muxer_restarted(self) -> None:
        self._muxer_restarts += 1

    def stats(self) -> ExecutorStats:
        refs = [ref for _, ref in self._refs.values()]
        held = None
        if refs:
            locations = ray.experimental.get_object_locations(refs)
            held = sorted({n for ref in refs for n in locations[ref]["node_ids"]})
        return ExecutorStats(ray_started=self._up, detections_held_by=held,
                             object_store_bytes=self._put_bytes if self._put_bytes else None,
                             muxer_restarts=self._muxer_restarts)

    def close(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._board is not None:
            ray.kill(self._board)
        self._muxers.close()  # made only once Ray was up
        if self._owns_ray and self._up:
            t0 = time.perf_counter()
            ray.shutdown()
            if self._stages is not None:
                self._stages.seconds["ray_stop"] = round(time.perf_counter() - t0, 3)

    # --- what only Ray does ---------------------------------------------------------------

    def detector_pool(self, settings: DictConfig, actors: int = 1, halt=None) -> DetectorPool:
        """A DetectorPool of `actors` actors, each on a GPU where the detector asks for one, for
        as many calls as the engine makes: each actor loads the model once. `halt()`, called
        while a call waits, raises to give up waiting (the engine stopped)."""
        self.start()
        # An actor lost with its node is made again elsewhere and its calls run again: the engine
        # goes on (the new one loads the model again, and the report counts that load).
        make = ray.remote(detector.DetectorActor).options(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus,
                                                          max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)
        return DetectorPool([make.remote() for _ in range(max(1, actors))], OmegaConf.to_object(settings),
                            self._board, halt)
