"""The driver: validate and plan; detect once; put the detections once; one Ray task per
segment; a muxer actor joins the chunks with the soundtrack; write the run report."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import ray
from omegaconf import DictConfig, OmegaConf
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raypipe import RaypipeError, detect, timeline
from raypipe.detections import Detections
from raypipe.mux import Muxer
from raypipe.segment import SegmentManifest, render_task
from raypipe.media import CODECS, MediaError, is_video, load_image
from raypipe.media.audio import check_audio
from raypipe.storage import Storage
from raypipe.timeline import JobError, Plan

log = logging.getLogger("raypipe")


class Stages:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 3)


def run_location(root: str | None, run_dir: str) -> str:
    """Where a run's files go: the Hydra run directory, or with `storage.root` set (storage
    every node can reach, s3://...), the same <job>/<time> path under that root."""
    if not root:
        return run_dir
    return root.rstrip("/") + "/" + "/".join(os.path.normpath(run_dir).split(os.sep)[-2:])


def prepare(cfg: DictConfig, run_root: str) -> tuple[Plan, str]:
    """Every check that needs no Ray: a bad job fails here, before any work or output."""
    detect.validate(cfg.detector)
    if cfg.render.max_frames_per_task is not None and cfg.render.max_frames_per_task < 1:
        raise JobError("render.max_frames_per_task", f"must be >= 1 or null (got {cfg.render.max_frames_per_task})")
    if cfg.ray.segment_strategy not in ("SPREAD", "DEFAULT"):
        raise JobError("ray.segment_strategy", f"must be SPREAD or DEFAULT (got {cfg.ray.segment_strategy!r})")
    name = str(cfg.job.name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise JobError("job.name", f"must be a plain name, no path (got {name!r}); to put the video elsewhere, "
                                   "set job.output")
    plan = timeline.plan(cfg.job, cfg.render)
    for uri in plan.sources:
        index = next(s.index for s in plan.segments if s.shot.source == uri)
        try:
            if not is_video(uri):  # videos were probed by the planner
                load_image(uri)  # a full decode: a missing or corrupt image fails here, not in a task
        except MediaError as e:
            raise JobError(f"job.segments[{index}].source", str(e)) from None
    if plan.audio.path:
        try:
            check_audio(plan.audio.path)
        except MediaError as e:
            raise JobError("job.audio.path", str(e)) from None
    codec = CODECS[plan.encode.codec]
    output = cfg.job.output or f"{run_root}/{plan.name}{codec.containers[0]}"
    if not output.lower().endswith(codec.containers):
        raise JobError("job.output", f"{plan.encode.codec} goes in {', '.join(codec.containers)} files (got {output})")
    if "://" not in output:
        output = os.path.abspath(output)
        _check_local_dir_writable(os.path.dirname(output))
    try:
        Storage(run_root).check_writable()
    except OSError as e:
        raise JobError("storage.root", f"cannot write to {run_root}: {str(e).splitlines()[0]}") from None
    return plan, output


def _check_local_dir_writable(folder: str) -> None:
    """job.output's folder, or the nearest one that exists (the render creates the rest),
    must be writable: found now, not after every segment has rendered. Nothing is created."""
    while not os.path.isdir(folder):
        if os.path.exists(folder):
            raise JobError("job.output", f"{folder} is a file, not a folder")
        folder = os.path.dirname(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise JobError("job.output", f"cannot write to {folder}: permission denied")


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


@contextmanager
def ray_session(rc: DictConfig, stages: Stages):
    """An embedded local Ray by default (never a silent join of some running cluster)."""
    if ray.is_initialized():
        yield
        return
    with stages("ray_start"):
        if rc.address is None:
            ray.init(address="local", num_cpus=rc.num_cpus, object_store_memory=rc.object_store_memory,
                     include_dashboard=False, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
        else:
            _check_reachable(rc.address)
            try:
                ray.init(address=rc.address, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
            except ConnectionError as e:
                raise JobError("ray.address", f"cannot reach a Ray cluster at {rc.address!r} ({e.args[0].split('.')[0]}); "
                               f"{_START_HINT}") from None
    try:
        yield
    finally:
        with stages("ray_stop"):
            ray.shutdown()


def render(cfg: DictConfig, run_dir: str, on_result=None) -> dict:
    """Renders the job; `on_result(report)` is called once the video is published, before
    Ray shuts down (~1.3 s of waiting for its processes that nobody needs to sit through)."""
    stages = Stages()
    t0 = time.perf_counter()
    run_root = run_location(cfg.storage.root, run_dir)
    store = Storage(run_root)
    with ExitStack() as cleanup:
        with stages("validate"):
            plan, output = prepare(cfg, run_root)
        if cfg.storage.root:
            cleanup.callback(store.delete_dir, "inputs")
            with stages("stage_inputs"):
                plan = stage_inputs(plan, store)
        # Registered before the driver's own threads, so it runs after they have stopped:
        # chunks are never left as results.
        cleanup.callback(store.delete_dir, "segments")
        threads = cleanup.enter_context(ThreadPoolExecutor(max_workers=2, thread_name_prefix="driver"))
        # Subjects are found while Ray starts: detection needs Ray only to reach a GPU.
        found = threads.submit(detect_here, cfg.detector, plan) if cfg.detector.num_gpus == 0 else None
        tasks, head = None, None
        if cfg.ray.address is None and not ray.is_initialized():  # an embedded Ray: its CPUs are known now
            tasks = ordered_tasks(plan, cfg, (cfg.ray.num_cpus or os.cpu_count() or 1) / cfg.ray.segment_cpus)
            if found is not None:
                head = HeadStart(tasks[0]).start(threads, found, plan, store)
        cleanup.enter_context(ray_session(cfg.ray, stages))
        head_task = head.claim() if head else None
        # On the driver's own node (the head under `ray job submit`), which lives as long as
        # the render does: losing a worker node must not lose the chunks collected so far.
        # Strict, because a soft affinity let Ray place it on a worker node.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        muxer = ray.remote(num_cpus=0, scheduling_strategy=here)(Muxer).remote(
            store, plan.total_frames, plan.duration, plan.audio, output, plan.encode.codec)
        with stages("detect"):  # what is left of it once Ray is up
            detections, info = found.result() if found else detect_in_actor(cfg.detector, plan)
            detections_ref = ray.put(detections)  # the one put of this render
        if tasks is None:
            cpus = ray.cluster_resources().get("CPU", 1.0) / cfg.ray.segment_cpus
            tasks = ordered_tasks(plan, cfg, cpus)
        with stages("segments"):
            remote = [t for t in tasks if t is not head_task]
            manifests = render_tasks(remote, detections_ref, plan.encode, store, muxer, cfg.ray,
                                     head.future if head_task else None)
        # Which nodes hold the detections: one copy per node that ran tasks, however many it ran.
        held_by = ray.experimental.get_object_locations([detections_ref])[detections_ref]["node_ids"]
        with stages("mux"):
            result = _get(muxer.finish.remote())
        stages.seconds["total"] = round(time.perf_counter() - t0, 3)
        report = _report(plan, result, info, detections, manifests, stages)
        report.update(detections_held_by_nodes=sorted(held_by), run=run_root, tasks=len(tasks),
                      run_id=os.path.basename(os.path.normpath(run_dir)),
                      max_frames_per_task=max(t.frames for t in tasks))
        data = json.dumps(report, indent=2).encode()
        Storage(run_dir).write_bytes("report.json", data)
        if run_root != run_dir:  # the run's record goes where its video went
            store.write_bytes("report.json", data)
            hydra_dir = os.path.join(run_dir, ".hydra")
            for name in sorted(os.listdir(hydra_dir)) if os.path.isdir(hydra_dir) else ():
                store.put_file(os.path.join(hydra_dir, name), f".hydra/{name}")
        if on_result is not None:
            on_result(report)
    return report


def detect_here(detector: DictConfig, plan: Plan) -> tuple[Detections, dict]:
    """One pass over the distinct sources in the driver, packed for the object store."""
    compacted, info = detect.detect_all(OmegaConf.to_object(detector), plan.sources, plan.prompts,
                                        plan.video_ranges())
    return _packed(detector, compacted, info)


def detect_in_actor(detector: DictConfig, plan: Plan) -> tuple[Detections, dict]:
    """The same pass in one actor on a node with a GPU, for a detector that asks for one."""
    actor = ray.remote(detect.DetectorActor).options(num_cpus=detector.num_cpus, num_gpus=detector.num_gpus).remote()
    try:
        compacted, info = _get(actor.detect.remote(OmegaConf.to_object(detector), plan.sources, plan.prompts,
                                                   plan.video_ranges()))
    finally:
        ray.kill(actor)  # the model's memory goes back before the segments need it
    return _packed(detector, compacted, info)


def _packed(detector: DictConfig, compacted: dict, info: dict) -> tuple[Detections, dict]:
    if info["fallback_reason"]:
        log.warning("DETECTOR FELL BACK TO SALIENCY: %s", info["fallback_reason"])
    return Detections.pack(detect.expand(compacted), smoothing=detector.track_smoothing), info


class HeadStart:
    """The driver renders the costliest task itself while its embedded Ray starts: Ray's
    ~2.3 s start leaves about a third of two cores idle, and the rest of the render would
    wait for it anyway. It starts only once detection is done (without loading a model) and
    only if Ray is not up by then; otherwise every task goes to Ray as usual."""

    def __init__(self, task: timeline.TaskPlan):
        self.task, self._lock, self._ray_up, self._claimed = task, threading.Lock(), False, False
        self.future: Future | None = None

    def start(self, threads: ThreadPoolExecutor, found: Future, plan: Plan, store: Storage) -> "HeadStart":
        self.future = threads.submit(self._run, found, plan, store)
        return self

    def _run(self, found: Future, plan: Plan, store: Storage):
        detections, info = found.result()
        with self._lock:
            # A driver that loaded a model holds its memory: leave the rendering to Ray.
            if self._ray_up or info["clip_loads"]:
                return None
            self._claimed = True
        return render_task(self.task, detections, plan.encode, store)

    def claim(self) -> timeline.TaskPlan | None:
        """Called once Ray is up: the task the driver took, if it took one."""
        with self._lock:
            self._ray_up = True
            return self.task if self._claimed else None


# Tasks per CPU when long segments are split: enough that the last ones to finish are short
# (a tail of at most ~1/3 of a task per CPU), few enough that per-task start-up stays small.
TASKS_PER_CPU = 3
# The fewest frames a split task gets (Remotion Lambda's floor too): a task's fixed cost
# (~0.1 s: scheduling, opening its sources, the first frame's pyramids, the encoder's start
# and the chunk's upload) stays around a tenth of its work at ~50 ms a 1080p frame.
MIN_TASK_FRAMES = 20


def ordered_tasks(plan: Plan, cfg: DictConfig, slots: float) -> list[timeline.TaskPlan]:
    """The render's tasks, costliest first (a long or video-decoding task started last would
    set the finish time). Segments longer than render.max_frames_per_task are split; by
    default, into about TASKS_PER_CPU tasks for every task slot the cluster has."""
    max_frames = cfg.render.max_frames_per_task or max(
        MIN_TASK_FRAMES, math.ceil(plan.total_frames / (TASKS_PER_CPU * max(1.0, slots))))
    return sorted(timeline.split(plan, max_frames), key=lambda t: -timeline.estimated_ms(t))


def stage_inputs(plan: Plan, store: Storage) -> Plan:
    """Local files a job names are copied into the run's storage once, so that nodes that do
    not share the driver's disk read them from there (URIs and samples are read as they are)."""
    moved = {}
    for uri in (*plan.sources, plan.audio.path):
        if uri and "://" not in uri and not uri.startswith("sample:"):
            digest = hashlib.sha1(uri.encode()).hexdigest()[:10]
            moved[uri] = store.put_file(uri, f"inputs/{digest}-{os.path.basename(uri)}")
    return plan.with_sources(moved)


def render_tasks(tasks, detections_ref, enc, store: Storage, muxer, rc: DictConfig, head: Future | None) -> list:
    """One Ray task per frame range, in the order given; each manifest goes to the muxer as
    soon as its task is done, the driver's own head-start task's too."""
    # A task lost with its node is re-run elsewhere (retries are for system failures, not
    # for our own errors); its chunk's name is fixed, so a re-run overwrites it atomically.
    remote = ray.remote(render_task).options(num_cpus=rc.segment_cpus, scheduling_strategy=rc.segment_strategy,
                                             max_retries=3)
    pending = [remote.remote(t, detections_ref, enc, store) for t in tasks]
    manifests, added = [], []

    def collect(m: SegmentManifest) -> None:
        log.info("segment %d, frames %d-%d: %.1f s on node %s", m.index, m.start, m.start + m.frames - 1,
                 m.seconds, m.node_id[:8])
        manifests.append(m)
        added.append(muxer.add.remote(m))

    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.2 if head and not head.done() else None)
            for m in _get(done):
                collect(m)
            if head is not None and head.done():
                collect(head.result())
                head = None
        if head is not None:
            collect(head.result())
        _get(added)
    except BaseException:
        # Stop the rest before the caller removes the chunks, so none is written after that:
        # politely first (a task unwinds and removes its temporary files), then by force.
        for ref in pending:
            ray.cancel(ref)
        _, stuck = ray.wait(pending, num_returns=len(pending), timeout=10)
        for ref in stuck:
            ray.cancel(ref, force=True)
        ray.wait(stuck, num_returns=len(stuck), timeout=30)
        raise
    return manifests


def _get(refs):
    """ray.get that re-raises our own one-line errors from inside tasks and actors as they were."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, RaypipeError):
            raise e.cause from None
        raise


def _report(plan, result, info, detections: Detections, manifests, stages) -> dict:
    manifests = sorted(manifests, key=lambda m: m.start)
    in_ray = [m for m in manifests if m.pid != os.getpid()]  # not the driver's head start
    enc = plan.encode
    return {
        "job": plan.name,
        "output": result["output"],
        "frames": result["frames"],
        "fps": float(enc.fps),
        "fps_exact": f"{enc.fps.numerator}/{enc.fps.denominator}",
        "width": enc.width,
        "height": enc.height,
        "duration_s": round(plan.duration, 6),
        "segments": len(plan.segments),
        "detector": info["detector"],
        "detector_fallback": info["fallback_reason"],
        "clip_loads": info["clip_loads"],
        "segment_workers": len({(m.node_id, m.pid) for m in in_ray}),
        "segment_workers_with_torch": len({(m.node_id, m.pid) for m in in_ray if m.torch_imported}),
        "masks_zero_copy": all(m.masks_in_shared_memory for m in in_ray),
        "frames_rendered_by_the_driver": sum(m.frames for m in manifests if m.pid == os.getpid()),
        "detections": detections.summary(),
        "object_store_bytes": detections.nbytes,  # the render's one put
        "detect_s": info["seconds"],  # the pass itself, which ran while Ray started
        # Bytes each reader took from storage: sources are streamed, never fetched whole.
        "bytes_read": {"detector": info["bytes_read"], "segments": sum(m.bytes_read for m in manifests),
                       "mux": result["bytes_read"]},
        "stages": stages.seconds,
        "segment_runs": [  # one entry per task: a segment's frames [start, start + frames)
            {"index": m.index, "start": m.start, "frames": m.frames, "node_id": m.node_id, "node_ip": m.node_ip,
             "pid": m.pid,
             "seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "bytes_read": m.bytes_read}
            for m in manifests
        ],
    }
