"""Ray's workers as an executor: one Ray task per frame range, the muxer as an actor on the
driver's node, detections put once into the object store and mapped zero-copy by the tasks.

Tasks submitted before Ray is up wait for `start`; detections may be given as a Future (the
driver detects on a thread while Ray starts) and are put once, when a task first needs them.
An embedded local Ray by default, never a silent join of some running cluster; a cluster
with `ray.address`.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import ray
from omegaconf import DictConfig, OmegaConf
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raypipe.detection import detector
from raypipe.engine import mux
from raypipe.engine.executor import Executor, ExecutorStats, Outcome, TaskLost, Work, ready
from raypipe.engine.progress import Board, Reporter
from raypipe.engine.task import SegmentManifest, render_task
from raypipe.errors import JobError, MuxError, RaypipeError
from raypipe.media import generated
from raypipe.plan.cost import local_slots
from raypipe.plan.timeline import Plan
from raypipe.storage import Storage

log = logging.getLogger("raypipe")

# Ray's start-up notices would stand between a failed render and its one-line error.
_RAY_LOGS = logging.ERROR
_START_HINT = "start one with `ray start --head`, or leave ray.address unset for an embedded Ray"


def _check_reachable(address: str) -> None:
    """Ray waits minutes on a GCS address that does not answer; a TCP connect says so in seconds."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise JobError("ray.address", f"cannot reach a Ray cluster at {address!r} ({e}); {_START_HINT}") from None


def get(refs):
    """ray.get that re-raises our own one-line errors from inside tasks and actors as they were."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, RaypipeError):
            raise e.cause from None
        raise


class RayExecutor(Executor):
    name = "ray"

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
        self.muxers: list[MuxerLink] = []

    def start(self) -> None:
        """Starts an embedded Ray, or joins the cluster at ray.address; blocks until it is up.
        Called again, it does nothing. Ray must start on the main thread: a Ray initialized on
        another thread cannot be used from this one (the process exits)."""
        if not self._up:
            t0 = time.perf_counter()
            _init(self.rc)
            self._up = True
            if self._stages is not None:
                self._stages.seconds["ray_start"] = round(time.perf_counter() - t0, 3)
        if self._remote is None:
            self._remote = ray.remote(render_task).options(num_cpus=self.rc.segment_cpus,
                                                           scheduling_strategy=self.rc.segment_strategy, max_retries=0)
            self._board = ray.remote(num_cpus=0, scheduling_strategy=_here())(Board).remote()
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
                                  report=Reporter(self._board, work.id))
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
        return _Deferred(self, (total_frames, duration, audio, output, codec))

    def _muxer_now(self, *args) -> MuxerLink:
        self.start()
        link = MuxerLink(*args)
        self.muxers.append(link)
        return link

    def stats(self) -> ExecutorStats:
        refs = [ref for _, ref in self._refs.values()]
        held = None
        if refs:
            locations = ray.experimental.get_object_locations(refs)
            held = sorted({n for ref in refs for n in locations[ref]["node_ids"]})
        return ExecutorStats(ray_started=self._up, detections_held_by=held,
                             object_store_bytes=self._put_bytes if self._put_bytes else None,
                             muxer_restarts=sum(m.restarts for m in self.muxers))

    def close(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._board is not None:
            ray.kill(self._board)
        if self._owns_ray and self._up:
            t0 = time.perf_counter()
            ray.shutdown()
            if self._stages is not None:
                self._stages.seconds["ray_stop"] = round(time.perf_counter() - t0, 3)

    # --- what only Ray does ---------------------------------------------------------------

    def detect(self, settings: DictConfig, plan: Plan, found) -> tuple[dict, dict]:
        """Detection in one actor on a node with a GPU, for a detector that asks for one."""
        with self.detector(settings) as pool:
            return pool.detect(plan.sources, plan.prompts, plan.video_ranges(), found)

    @contextmanager
    def detector(self, settings: DictConfig, actors: int = 1, halt=None):
        """A DetectorPool of `actors` actors, each on a GPU where the detector asks for one, for
        as many calls as the caller makes (a batch's rows): each actor loads the model once.
        `halt()`, called while a call waits, raises to give up waiting (the caller stopped)."""
        self.start()
        # An actor lost with its node is made again elsewhere and its calls run again: the batch
        # goes on (the new one loads the model again, and the report counts that load).
        make = ray.remote(detector.DetectorActor).options(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus,
                                                          max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)
        pool = DetectorPool([make.remote() for _ in range(max(1, actors))], OmegaConf.to_object(settings),
                            self._board, halt)
        try:
            yield pool
        finally:
            for actor in pool.actors:
                ray.kill(actor)  # the models' memory goes back before the segments need it


ACTOR_RESTARTS = 3


class _LoadsTold:
    """What a detector actor calls on each model load. The driver's board has the count before
    the actor goes on, so a load is counted even when its process dies in that same call (its
    result, which would have said so, is lost with it)."""

    def __init__(self, board):
        self.board = board

    def __call__(self, loads: int) -> None:
        ray.get(self.board.loaded.remote(loads))


class DetectorPool:
    """Detector actors that deal each call's sources out among those that have started, in
    turn across calls. The first call waits up to START_S for all of them, then goes on with
    those up; an actor still waiting for a GPU (the cluster has fewer now than asked for, or is
    adding them) gets sources once it starts."""

    START_S = 30.0

    HALT_S = 0.2  # how often a wait asks whether to give up

    def __init__(self, actors: list, cfg, board, halt=None):
        self.actors, self.cfg, self.board, self.ready, self.turn = actors, cfg, board, [], 0
        self.told = _LoadsTold(board)  # with each call, not to the constructor: what an actor is made
        # again from must outlive its node, and Ray keeps a call's arguments for its retries
        self.halt = halt or (lambda: None)
        self.waiting = {a.__ray_ready__.remote(): a for a in actors}
        self.counted = 0  # the model loads that earlier calls' infos reported

    @property
    def loads(self) -> int:
        """The model loads of every actor of the pool so far, those that died included."""
        return ray.get(self.board.loads.remote())

    def _look(self) -> None:
        if not self.waiting:
            return
        timeout = 0.0
        if not self.ready:  # the first call: one, however long it takes, then the others for a while
            self._wait(list(self.waiting), 1)
            timeout = self.START_S
        up = self._wait(list(self.waiting), len(self.waiting), timeout)
        for ref in up:
            get(ref)  # an actor that could not start says why
            self.ready.append(self.waiting.pop(ref))

    def _wait(self, refs: list, count: int, timeout: float | None = None) -> list:
        """ray.wait in short steps, asking `halt` between them: an actor may wait for a GPU
        that never comes, and a stopped batch must not wait with it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = self.HALT_S if deadline is None else max(0.0, min(self.HALT_S, deadline - time.monotonic()))
            up, _ = ray.wait(refs, num_returns=count, timeout=left)
            if len(up) >= count or (deadline is not None and time.monotonic() >= deadline):
                return up
            self.halt()

    def detect(self, sources, prompts, video_ranges, cache) -> tuple[dict, dict]:
        self._look()
        n = min(len(self.ready), len(sources)) or 1
        order = self.ready[self.turn:] + self.ready[:self.turn]
        self.turn = (self.turn + n) % len(self.ready)
        refs = [a.detect.remote(self.cfg, tuple(sources[i::n]), prompts, video_ranges, cache, self.told)
                for i, a in enumerate(order[:n])]
        self._wait(refs, len(refs))
        results = get(refs)
        found = {u: v for f, _ in results for u, v in f.items()}
        infos = [info for _, info in results]
        loads = self.loads  # not the infos': a call that ran again after its actor died lost the dead one's
        info = {**infos[0], "seconds": max(i["seconds"] for i in infos), "clip_loads": loads - self.counted,
                "fallback_reason": next((i["fallback_reason"] for i in infos if i["fallback_reason"]), None),
                **{k: sum(i[k] for i in infos) for k in ("detections_reused", "bytes_read")}}
        self.counted = loads
        return {u: found[u] for u in sources}, info


def _init(rc: DictConfig) -> None:
    # Ray puts in its own SIGTERM handler (an immediate exit); the caller's, which unwinds the
    # render and removes its partial files, is put back.
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    if rc.address is None:
        ray.init(address="local", num_cpus=rc.num_cpus, object_store_memory=rc.object_store_memory,
                 include_dashboard=False, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
    else:
        _check_reachable(rc.address)
        try:
            ray.init(address=rc.address, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
        except ConnectionError as e:
            raise JobError("ray.address", f"cannot reach a Ray cluster at {rc.address!r} "
                                          f"({e.args[0].split('.')[0]}); {_START_HINT}") from None
    if callable(handler):
        signal.signal(signal.SIGTERM, handler)


def embedded(rc: DictConfig) -> bool:
    """Whether a render with this ray section would start a Ray of its own on this machine."""
    return rc.address is None and not ray.is_initialized()


def _here() -> NodeAffinitySchedulingStrategy:
    """The driver's own node, strictly (a soft affinity let Ray place actors on a worker node)."""
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


class MuxerLink:
    """The muxer actor, on the driver's own node (the head under `ray job submit`, which lives
    as long as the render does). The driver keeps every manifest it sends, so a muxer lost
    mid-collection (its process killed) is made again, once, and given them all again: the
    chunks are in storage."""

    def __init__(self, total_frames, duration, audio, output, codec):
        here = _here()
        self._make = lambda: ray.remote(num_cpus=0, scheduling_strategy=here)(mux.Muxer).remote(
            total_frames, duration, audio, output, codec)
        self.actor, self.sent, self.acks, self.restarts = self._make(), [], [], 0

    def add(self, m: SegmentManifest) -> None:
        self.sent.append(m)
        self.acks.append(self.actor.add.remote(m))

    def finish(self) -> dict:
        try:
            while True:
                try:
                    return get([*self.acks, self.actor.finish.remote()])[-1]
                except ray.exceptions.RayActorError as e:
                    if self.restarts:
                        raise MuxError(f"the muxer was lost twice ({str(e).strip().splitlines()[0]})") from None
                    log.warning("the muxer was lost; starting it again with the %d chunks so far", len(self.sent))
                    self.restarts += 1
                    self.actor = self._make()
                    self.acks = [self.actor.add.remote(m) for m in self.sent]
        finally:  # published or failed, it is done with
            self.abandon()


    def abandon(self) -> None:
        ray.kill(self.actor)  # its process goes now, not whenever Ray collects the handle (the batch's end)
        self.sent, self.acks = [], []


class _Deferred:
    def __init__(self, ray: RayExecutor, args: tuple):
        self.ray, self.args, self.link, self.early = ray, args, None, []

    def add(self, manifest: SegmentManifest) -> None:
        if self.link is None and not self.ray.up:
            self.early.append(manifest)
        else:
            self._link().add(manifest)

    def _link(self) -> MuxerLink:
        if self.link is None:
            self.link = self.ray._muxer_now(*self.args)
            for m in self.early:
                self.link.add(m)
        return self.link

    def finish(self) -> dict:
        return self._link().finish()

    def abandon(self) -> None:
        self.early = []
        if self.link is not None:
            self.link.abandon()


def local_inputs(plan: Plan) -> list[str]:
    """The files a plan reads from the driver's disk (URIs and samples are read as they are)."""
    return [uri for uri in (*plan.sources, *plan.layer_sources, plan.audio.path)
            if uri and "://" not in uri and not generated(uri)]


def staged_name(uri: str) -> str:
    """Where in a run's storage a local file is staged: one name per path."""
    return f"inputs/{hashlib.sha1(uri.encode()).hexdigest()[:10]}-{os.path.basename(uri)}"


def stage_inputs(plan: Plan, store: Storage, reuse):
    """Local files a job names are copied into the run's storage once, so that nodes that do
    not share the driver's disk read them from there."""
    moved = {uri: store.put_file(uri, staged_name(uri)) for uri in local_inputs(plan)}
    return plan.with_sources(moved), reuse.moved(moved)
