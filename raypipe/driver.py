"""The driver: validate and plan; detect once; put the detections once; one Ray task per
segment; a muxer actor joins the chunks with the soundtrack; write the run report."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace

import ray
from omegaconf import DictConfig, OmegaConf
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raypipe import RaypipeError, cache, check_stop, detector, report_html, sheet, timeline
from raypipe.cache import ChunkCache, DetectionCache
from raypipe.detections import Detections
from raypipe.mux import Muxer, MuxError
from raypipe.progress import Board, Progress, Reporter
from raypipe.segment import SegmentManifest, render_task
from raypipe.media import CODECS, MediaError, ReadCounter, is_video, load_image, probe
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


def prepare(cfg: DictConfig, run_root: str, reads: dict[str, ReadCounter] | None = None) -> tuple[Plan, str]:
    """Every check that needs no Ray: a bad job fails here, before any work or output.
    `reads` gets the bytes taken from storage by the planner's probes of videos ("probe")
    and by the checks of images and the soundtrack ("validate")."""
    reads = {} if reads is None else reads
    probed, checked = reads.setdefault("probe", ReadCounter()), reads.setdefault("validate", ReadCounter())
    detector.validate(cfg.detector)
    if cfg.render.max_frames_per_task is not None and cfg.render.max_frames_per_task < 1:
        raise JobError("render.max_frames_per_task", f"must be >= 1 or null (got {cfg.render.max_frames_per_task})")
    if cfg.ray.segment_strategy not in ("SPREAD", "DEFAULT"):
        raise JobError("ray.segment_strategy", f"must be SPREAD or DEFAULT (got {cfg.ray.segment_strategy!r})")
    name = str(cfg.job.name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise JobError("job.name", f"must be a plain name, no path (got {name!r}); to put the video elsewhere, "
                                   "set job.output")
    # Once per file, however many segments show it: a probe decodes a file's first frame and last second.
    plan = timeline.plan(cfg.job, cfg.render, functools.cache(functools.partial(probe, counter=probed)))
    for uri in plan.sources:
        index = next(s.index for s in plan.segments if s.shot.source == uri)
        try:
            if not is_video(uri):  # videos were probed by the planner
                load_image(uri, checked)  # a full decode: a missing or corrupt image fails here, not in a task
        except MediaError as e:
            raise JobError(f"job.segments[{index}].source", str(e)) from None
    if plan.audio.path:
        try:
            check_audio(plan.audio.path, checked)
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
    cache_root = cache.default_root(cfg)
    if cfg.cache.max_gb <= 0:
        raise JobError("cache.max_gb", f"must be > 0 (got {cfg.cache.max_gb}); to render without a cache, set "
                                       "render.cache=false")
    if cache_root is not None:
        try:
            Storage(cache_root).check_writable()
        except OSError as e:
            raise JobError("cache.root", f"cannot write to {cache_root}: {str(e).splitlines()[0]}; set cache.root, "
                                         "or render.cache=false") from None
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
    # Ray puts in its own SIGTERM handler (an immediate exit); the caller's, which unwinds the
    # render and removes its partial files, is put back.
    handler = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
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
    if callable(handler):
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        with stages("ray_stop"):
            ray.shutdown()


def render(cfg: DictConfig, run_dir: str, on_result=None, quiet: bool = False) -> dict:
    """Renders the job; `on_result(report)` is called once the video is published, before
    Ray shuts down (~1.3 s of waiting for its processes that nobody needs to sit through).
    Progress goes to stderr (a bar on a terminal) unless `quiet`."""
    stages = Stages()
    t0 = time.perf_counter()
    run_root = run_location(cfg.storage.root, run_dir)
    store = Storage(run_root)
    with ExitStack() as cleanup:
        reads: dict[str, ReadCounter] = {}
        with stages("validate"):
            plan, output = prepare(cfg, run_root, reads)
        tasks = None
        with stages("cache_lookup"):
            reuse = Reuse.look_up(cfg, plan, store)
            slots = local_slots(cfg)
            if cfg.ray.address is None and not ray.is_initialized():  # an embedded Ray: its CPUs are known now
                tasks = reuse.pending(ordered_tasks(plan, cfg, slots))
        here = tasks is not None and cfg.detector.num_gpus == 0 and not worth_starting_ray(
            tasks, plan.encode, slots, cfg.ray.min_saving_s)
        if cfg.storage.root and not here:
            cleanup.callback(store.delete_dir, "inputs")
            with stages("stage_inputs"):
                plan, reuse = stage_inputs(plan, store, reuse)
                if tasks:  # the same ranges, of the segments that read the staged files
                    tasks = [replace(t, segment=plan.segments[t.segment.index]) for t in tasks]
        # Registered before the driver's own threads, so it runs after they have stopped:
        # chunks outside the cache are never left as results.
        cleanup.callback(store.delete_dir, "segments")
        threads = cleanup.enter_context(ThreadPoolExecutor(max_workers=2, thread_name_prefix="driver"))
        # Subjects are found while Ray starts: detection needs Ray only to reach a GPU.
        found = threads.submit(detect_here, cfg.detector, plan, reuse.detections) \
            if cfg.detector.num_gpus == 0 else None
        if here:
            done = render_here(plan, output, tasks, reuse, found, stages, quiet, int(slots))
        else:
            done = render_on_ray(cfg, plan, output, tasks, reuse, found, threads, cleanup, stages, quiet)
        manifests = [*reuse.manifests, *done.runs.manifests]
        with stages("cache_evict"):
            evicted = reuse.evict(cfg.cache.max_gb, manifests)
        stages.seconds["total"] = round(time.perf_counter() - t0, 3)
        with stages("sheet"):  # before report.json, which counts what it reads
            image = detection_image(cfg, plan, done, reads.setdefault("sheet", ReadCounter()))
        report = _report(plan, done.result, done.info, done.detections, manifests, stages, reads)
        report.update(detections_held_by_nodes=done.held_by, run=run_root, tasks=len(manifests),
                      run_id=os.path.basename(os.path.normpath(run_dir)),
                      max_frames_per_task=max(m.frames for m in manifests), ray_started=not here,
                      retries=done.runs.retries, muxer_restarts=done.muxer_restarts,
                      cache=reuse.summary(manifests, done.info, evicted))
        data = json.dumps(report, indent=2).encode()
        Storage(run_dir).write_bytes("report.json", data)
        if run_root != run_dir:  # the run's record goes where its video went
            store.write_bytes("report.json", data)
            hydra_dir = os.path.join(run_dir, ".hydra")
            for name in sorted(os.listdir(hydra_dir)) if os.path.isdir(hydra_dir) else ():
                store.put_file(os.path.join(hydra_dir, name), f".hydra/{name}")
        if on_result is not None:
            on_result(report)
        with stages("report_html"):  # after the result is out: a page for people, not the video
            write_html(cfg, plan, report, run_dir, store, image)
    return report


def detection_image(cfg: DictConfig, plan: Plan, done: "Done", counter: ReadCounter):
    """report.html's detection sheet; None, and a warning, where a source no longer reads."""
    try:
        return sheet.detection_sheet(plan, done.detections, done.info["detector"], cfg.detector.keyframe_rate, counter)
    except (MediaError, OSError, ValueError) as e:  # the video is out; say why the page is not
        log.warning("report.html not written: %s", str(e).splitlines()[0])
        return None


def write_html(cfg: DictConfig, plan: Plan, report: dict, run_dir: str, store: Storage, image) -> None:
    """report.html beside report.json (and beside the video, with storage.root set)."""
    if image is None:
        return
    try:
        strips = report_html.thumbnails(report, [(s.start, s.end) for s in plan.segments])
        page = report_html.render_html(report, OmegaConf.to_yaml(cfg), image, strips).encode()
    except (MediaError, OSError, ValueError) as e:  # the video is out; say why the page is not
        log.warning("report.html not written: %s", str(e).splitlines()[0])
        return
    Storage(run_dir).write_bytes("report.html", page)
    if store.root != run_dir:
        store.write_bytes("report.html", page)


# CPUs that an embedded Ray's own processes (raylet, GCS, the driver's detection and the
# head-start task, the muxer and progress actors) take from its workers: on 2 cores the
# demo's tasks took 8.2 s of worker time where one process takes 5.5 s.
RAY_OVERHEAD_CPUS = 0.6
# The share of a frame's work that does not overlap across the driver's threads (the GIL,
# memory bandwidth): 2 threads on 2 cores render the demo and one_long 1.5x as fast as one,
# which is Amdahl's law with this serial share (measured on 2 cores only).
THREAD_SERIAL = 0.34


def local_slots(cfg: DictConfig) -> float:
    """Tasks this machine runs side by side: an embedded Ray's workers, or the driver's threads."""
    return (cfg.ray.num_cpus or os.cpu_count() or 1) / cfg.ray.segment_cpus


def worth_starting_ray(tasks: list[timeline.TaskPlan], enc, slots: float, min_saving_s: float) -> bool:
    """Whether an embedded Ray would finish sooner than the driver alone. The driver renders
    on `slots` threads (bounded by THREAD_SERIAL), Ray on `slots` worker processes (less what
    its own processes take); the difference must beat what Ray's start costs (`ray_start` in
    report.json: 3 to 4 s on 2 cores). On 2 cores the driver is always as fast; on 16, Ray
    pays from about 25 s of estimated work."""
    if not tasks or min_saving_s <= 0:
        return bool(tasks)
    pixels = enc.width * enc.height / (1920 * 1080)  # the estimates are for 1080p frames
    work = sum(timeline.estimated_ms(t) for t in tasks) * pixels / 1000
    here = work * (THREAD_SERIAL + (1 - THREAD_SERIAL) / max(1.0, slots))
    on_ray = work / max(1.0, slots - RAY_OVERHEAD_CPUS)
    return len(tasks) > 1 and here - on_ray > min_saving_s


@dataclass
class Done:
    runs: "Runs"
    result: dict
    detections: Detections
    info: dict
    held_by: list = field(default_factory=list)  # nodes that held the detections
    muxer_restarts: int = 0


def _progress(plan: Plan, tasks, reuse: "Reuse", quiet: bool) -> Progress:
    return Progress(plan.total_frames, len(tasks) + len(reuse.manifests), sum(m.frames for m in reuse.manifests),
                    len(reuse.manifests), quiet)


def render_here(plan: Plan, output: str, tasks, reuse: "Reuse", found: Future, stages: Stages, quiet: bool,
                workers: int) -> Done:
    """Everything in the driver, with no Ray: an unchanged job (every chunk cached), or one
    that Ray would not finish sooner. Tasks run side by side on `workers` threads: OpenCV,
    NumPy and the codecs release the GIL for most of a frame (2 threads on 2 cores: 1.5x)."""
    with stages("detect"):
        detections, info = found.result()
    muxer = Muxer(plan.total_frames, plan.duration, plan.audio, output, plan.encode.codec)
    for m in reuse.manifests:
        muxer.add(m)
    runs, progress = Runs(), _progress(plan, tasks, reuse, quiet)
    lock, made, failed = threading.Lock(), {}, threading.Event()

    def run(task: timeline.TaskPlan) -> SegmentManifest:
        def report(frames: int) -> None:
            if failed.is_set():  # another task failed: stop at this frame rather than finish
                raise _Abandoned()
            with lock:
                made[task.start] = frames
                progress.update(sum(made.values()), 1)
        return render_task(task, detections, plan.encode, *reuse.target(task), report=report)

    with stages("segments"), ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks) or 1)),
                                                thread_name_prefix="render") as pool:
        pending = {pool.submit(run, t) for t in tasks}
        try:
            while pending:
                check_stop()  # signals reach the main thread; the tasks see the stop at their next frame
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    m = future.result()
                    runs.manifests.append(m)
                    muxer.add(m)
                    with lock:
                        progress.task_done(_done_line(m))
        except BaseException:
            failed.set()
            for future in pending:
                future.cancel()
            raise
    progress.close()
    check_stop()  # never publish a render that was told to stop
    with stages("mux"):
        result = muxer.finish()
    return Done(runs, result, detections, info)


class _Abandoned(Exception):
    """A task given up because another one failed: its partial chunk is removed like any."""


def render_on_ray(cfg: DictConfig, plan: Plan, output: str, tasks, reuse: "Reuse", found: Future | None,
                  threads: ThreadPoolExecutor, cleanup: ExitStack, stages: Stages, quiet: bool) -> Done:
    """One Ray task per frame range (the driver takes the costliest while its embedded Ray
    starts), a muxer actor, and the detections put once."""
    head = HeadStart(tasks[0], reuse.target(tasks[0])).start(threads, found, plan) if tasks and found else None
    cleanup.enter_context(ray_session(cfg.ray, stages))
    head_task = head.claim() if head else None
    muxer = MuxerLink(plan, output)
    with stages("detect"):  # what is left of it once Ray is up
        detections, info = found.result() if found else detect_in_actor(cfg.detector, plan, reuse.detections)
        detections_ref = ray.put(detections)  # the one put of this render
    if tasks is None:
        cpus = ray.cluster_resources().get("CPU", 1.0) / cfg.ray.segment_cpus
        tasks = reuse.pending(ordered_tasks(plan, cfg, cpus))
    for m in reuse.manifests:
        muxer.add(m)
    with stages("segments"):
        remote = [t for t in tasks if t is not head_task]
        progress = _progress(plan, tasks, reuse, quiet)
        try:
            runs = render_tasks(remote, detections_ref, plan.encode, reuse.target, muxer, cfg.ray,
                                head.future if head_task else None, progress)
        finally:
            progress.close()
    # Which nodes hold the detections: one copy per node that ran tasks, however many it ran.
    held_by = ray.experimental.get_object_locations([detections_ref])[detections_ref]["node_ids"]
    check_stop()
    with stages("mux"):
        result = muxer.finish()
    return Done(runs, result, detections, info, sorted(held_by), muxer.restarts)


@dataclass
class Reuse:
    """What earlier renders left that this one can use: detections by source, chunks by range.
    Without a cache (render.cache=false) every frame is rendered into the run's storage."""

    root: str | None
    detections: DetectionCache | None
    chunks: ChunkCache | None
    keys: dict[int, str]  # segment index -> chunk key
    run_store: Storage
    ext: str
    manifests: tuple[SegmentManifest, ...] = ()  # the cached chunks this render uses

    @classmethod
    def look_up(cls, cfg: DictConfig, plan: Plan, run_store: Storage) -> "Reuse":
        root = cache.default_root(cfg)
        if root is None:
            return cls(None, None, None, {}, run_store, plan.encode.chunk_extension)
        ids = {uri: cache.source_id(uri) for uri in plan.sources}
        kind, _ = detector.resolve_kind(cfg.detector)
        det_keys = cache.detection_keys(cfg.detector, kind, plan, ids)
        keys = cache.segment_keys(plan, ids, det_keys, cfg.detector.track_smoothing)
        return cls(root, DetectionCache(root, det_keys), ChunkCache(root, plan.encode.chunk_extension), keys,
                   run_store, plan.encode.chunk_extension)

    def pending(self, tasks: list[timeline.TaskPlan]) -> list[timeline.TaskPlan]:
        """The tasks still to render: the frames of each segment that no cached chunk holds,
        in the planned ranges cut at the cached ones. Cached chunks are used whatever ranges
        made them (another machine's core count splits segments differently), as every frame
        is a function of its global index alone; they become this render's manifests."""
        if self.chunks is None:
            return tasks
        left, found = [], []
        for index in dict.fromkeys(t.segment.index for t in tasks):
            planned = sorted((t for t in tasks if t.segment.index == index), key=lambda t: t.start)
            seg, key = planned[0].segment, self.keys[index]
            cached = {seg.start + a: [seg.start + b for b in ends if seg.start + b <= seg.end]
                      for a, ends in self.chunks.ranges(key).items()}
            pos = seg.start
            while pos < seg.end:
                if cached.get(pos):
                    end = max(cached[pos])
                    name = self.chunks.name(key, seg, pos, end)
                    self.chunks.use(name)
                    found.append(SegmentManifest(index, self.chunks.store.uri(name), pos, end - pos, 0.0, "", "", 0,
                                                 False, False, 0.0, 0, reused=True))
                    pos = end
                    continue
                gap_end = min([a for a, ends in cached.items() if a > pos and ends] + [seg.end])
                left += [timeline.TaskPlan(seg, max(t.start, pos), min(t.end, gap_end))
                         for t in planned if t.start < gap_end and t.end > pos]
                pos = gap_end
        self.manifests = tuple(found)
        return sorted(left, key=lambda t: -timeline.estimated_ms(t))

    def moved(self, moved: dict[str, str]) -> "Reuse":
        """The same, for a plan whose sources were staged elsewhere (keys follow content)."""
        if self.detections is None:
            return self
        keys = {moved.get(uri, uri): key for uri, key in self.detections.keys.items()}
        return replace(self, detections=DetectionCache(self.root, keys))

    def target(self, task: timeline.TaskPlan) -> tuple[Storage, str]:
        """Where a task's chunk goes: the cache, or the run's storage."""
        if self.chunks is None:
            return self.run_store, task.chunk(self.ext)
        return self.chunks.store, self.chunks.name(self.keys[task.segment.index], task.segment, task.start, task.end)

    def evict(self, max_gb: float, manifests) -> dict:
        if self.root is None:
            return {}
        used = {m.chunk[len(self.chunks.store.root.rstrip("/")) + 1:] for m in manifests}
        return cache.evict(self.root, int(max_gb * 1e9), used)

    def summary(self, manifests, info: dict, evicted: dict) -> dict:
        if self.root is None:
            return {"enabled": False}
        return {"enabled": True, "root": self.root, "detections_reused": info.get("detections_reused", 0),
                "chunks_reused": sum(m.reused for m in manifests),
                "frames_reused": sum(m.frames for m in manifests if m.reused),
                "frames_rendered": sum(m.frames for m in manifests if not m.reused), **evicted}


def detect_here(settings: DictConfig, plan: Plan, found: DetectionCache | None) -> tuple[Detections, dict]:
    """One pass over the distinct sources in the driver, packed for the object store."""
    compacted, info = detector.detect_all(OmegaConf.to_object(settings), plan.sources, plan.prompts,
                                          plan.video_ranges(), found)
    return _packed(settings, compacted, info)


def detect_in_actor(settings: DictConfig, plan: Plan, found: DetectionCache | None) -> tuple[Detections, dict]:
    """The same pass in one actor on a node with a GPU, for a detector that asks for one."""
    actor = ray.remote(detector.DetectorActor).options(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus).remote()
    try:
        compacted, info = _get(actor.detect.remote(OmegaConf.to_object(settings), plan.sources, plan.prompts,
                                                   plan.video_ranges(), found))
    finally:
        ray.kill(actor)  # the model's memory goes back before the segments need it
    return _packed(settings, compacted, info)


def _packed(settings: DictConfig, compacted: dict, info: dict) -> tuple[Detections, dict]:
    if info["fallback_reason"]:
        log.warning("DETECTOR FELL BACK TO SALIENCY: %s", info["fallback_reason"])
    return Detections.pack(detector.expand(compacted), smoothing=settings.track_smoothing), info


class HeadStart:
    """The driver renders the costliest task itself while its embedded Ray starts: Ray's
    ~2.3 s start leaves about a third of two cores idle, and the rest of the render would
    wait for it anyway. It starts only once detection is done (without loading a model) and
    only if Ray is not up by then; otherwise every task goes to Ray as usual."""

    def __init__(self, task: timeline.TaskPlan, target: tuple[Storage, str]):
        self.task, self.target = task, target
        self._lock, self._ray_up, self._claimed = threading.Lock(), False, False
        self.future: Future | None = None

    def start(self, threads: ThreadPoolExecutor, found: Future, plan: Plan) -> "HeadStart":
        self.future = threads.submit(self._run, found, plan)
        return self

    def _run(self, found: Future, plan: Plan):
        detections, info = found.result()
        with self._lock:
            # A driver that loaded a model holds its memory: leave the rendering to Ray.
            if self._ray_up or info["clip_loads"]:
                return None
            self._claimed = True
        return render_task(self.task, detections, plan.encode, *self.target)

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


def stage_inputs(plan: Plan, store: Storage, reuse: "Reuse") -> tuple[Plan, "Reuse"]:
    """Local files a job names are copied into the run's storage once, so that nodes that do
    not share the driver's disk read them from there (URIs and samples are read as they are)."""
    moved = {}
    for uri in (*plan.sources, plan.audio.path):
        if uri and "://" not in uri and not uri.startswith("sample:"):
            digest = hashlib.sha1(uri.encode()).hexdigest()[:10]
            moved[uri] = store.put_file(uri, f"inputs/{digest}-{os.path.basename(uri)}")
    return plan.with_sources(moved), reuse.moved(moved)


# Attempts for a task whose worker or node was lost (a system failure; our own errors are
# never retried): each attempt writes the same chunk name, atomically.
ATTEMPTS = 4


@dataclass
class Runs:
    manifests: list = field(default_factory=list)
    retries: list = field(default_factory=list)  # {"start", "frames", "attempt", "reason"} per re-run


def _done_line(m: SegmentManifest) -> str:
    return (f"segment {m.index}, frames {m.start}-{m.start + m.frames - 1}: {m.seconds:.1f} s on node "
            f"{m.node_id[:8] or 'driver'}")


def render_tasks(tasks, detections_ref, enc, target, muxer: "MuxerLink", rc: DictConfig, head: Future | None,
                 progress: Progress) -> Runs:
    """One Ray task per frame range, in the order given; each manifest goes to the muxer as
    soon as its task is done, the driver's own head-start task's too. A task lost with its
    worker or its node runs again (the driver counts it, so the report says so). The tasks
    report their frames to a board that the driver reads for its progress display."""
    remote = ray.remote(render_task).options(num_cpus=rc.segment_cpus, scheduling_strategy=rc.segment_strategy,
                                             max_retries=0)
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    board = ray.remote(num_cpus=0, scheduling_strategy=here)(Board).remote()

    def submit(t: timeline.TaskPlan):
        return remote.remote(t, detections_ref, enc, *target(t), report=Reporter(board, t.start))

    pending = {submit(t): (t, 1) for t in tasks}
    runs = Runs()

    def collect(m: SegmentManifest) -> None:
        runs.manifests.append(m)
        muxer.add(m)
        board.done.remote(m.start, m.frames)
        progress.task_done(_done_line(m))

    try:
        while pending:
            check_stop()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2 if head and not head.done() else 0.5)
            progress.update(*ray.get(board.snapshot.remote()))
            for ref in done:
                task, attempt = pending.pop(ref)
                try:
                    collect(_get(ref))
                except (ray.exceptions.RayTaskError, ray.exceptions.TaskCancelledError):
                    raise
                except ray.exceptions.RayError as e:  # the worker or its node died under it
                    reason = str(e).strip().splitlines()[0]
                    if attempt >= ATTEMPTS:
                        raise RenderError(f"segment {task.segment.index}, frames {task.start}-{task.end - 1}: lost "
                                          f"{ATTEMPTS} times ({reason})") from None
                    log.warning("segment %d, frames %d-%d: lost (%s); running it again", task.segment.index,
                                task.start, task.end - 1, reason)
                    runs.retries.append({"start": task.start, "frames": task.frames, "attempt": attempt + 1,
                                         "reason": type(e).__name__})
                    pending[submit(task)] = (task, attempt + 1)
            if head is not None and head.done():
                collect(head.result())
                head = None
        if head is not None:
            collect(head.result())
        progress.update(*ray.get(board.snapshot.remote()))
        ray.kill(board)
    except BaseException:
        # Stop the rest before the caller removes the chunks, so none is written after that:
        # politely first (a task unwinds and removes its temporary files), then by force.
        refs = list(pending)
        for ref in refs:
            ray.cancel(ref)
        _, stuck = ray.wait(refs, num_returns=len(refs), timeout=10)
        for ref in stuck:
            ray.cancel(ref, force=True)
        ray.wait(stuck, num_returns=len(stuck), timeout=30)
        raise
    return runs


class RenderError(RaypipeError, RuntimeError):
    pass


class MuxerLink:
    """The muxer actor, on the driver's own node (the head under `ray job submit`, which lives
    as long as the render does; strict, because a soft affinity let Ray place it on a worker
    node). The driver keeps every manifest it sends, so a muxer lost mid-collection (its
    process killed) is made again, once, and given them all again: the chunks are in storage."""

    def __init__(self, plan: Plan, output: str):
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._make = lambda: ray.remote(num_cpus=0, scheduling_strategy=here)(Muxer).remote(
            plan.total_frames, plan.duration, plan.audio, output, plan.encode.codec)
        self.actor, self.sent, self.acks, self.restarts = self._make(), [], [], 0

    def add(self, m: SegmentManifest) -> None:
        self.sent.append(m)
        self.acks.append(self.actor.add.remote(m))

    def finish(self) -> dict:
        while True:
            try:
                result = _get([*self.acks, self.actor.finish.remote()])[-1]
                ray.kill(self.actor)  # its process goes now, not whenever Ray collects the handle
                return result
            except ray.exceptions.RayActorError as e:
                if self.restarts:
                    raise MuxError(f"the muxer was lost twice ({str(e).strip().splitlines()[0]})") from None
                log.warning("the muxer was lost; starting it again with the %d chunks so far", len(self.sent))
                self.restarts += 1
                self.actor = self._make()
                self.acks = [self.actor.add.remote(m) for m in self.sent]


def _get(refs):
    """ray.get that re-raises our own one-line errors from inside tasks and actors as they were."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, RaypipeError):
            raise e.cause from None
        raise


def _report(plan, result, info, detections: Detections, manifests, stages, reads: dict[str, ReadCounter]) -> dict:
    manifests = sorted(manifests, key=lambda m: m.start)
    in_ray = [m for m in manifests if not m.reused and m.pid != os.getpid()]  # not the driver's head start
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
        "detector_device": info.get("device"),  # None: every detection came from the cache
        "clip_loads": info["clip_loads"],
        "segment_workers": len({(m.node_id, m.pid) for m in in_ray}),
        "segment_workers_with_torch": len({(m.node_id, m.pid) for m in in_ray if m.torch_imported}),
        "masks_zero_copy": all(m.masks_in_shared_memory for m in in_ray),
        "frames_rendered_by_the_driver": sum(m.frames for m in manifests if m.pid == os.getpid()),
        "driver_imported_torch": "torch" in sys.modules,
        "detections": detections.summary(),
        "object_store_bytes": detections.nbytes,  # the render's one put
        "detect_s": info["seconds"],  # the pass itself, which ran while Ray started
        # Bytes each reader took from storage: sources are streamed, never fetched whole.
        "bytes_read": {"detector": info["bytes_read"], "segments": sum(m.bytes_read for m in manifests),
                       "mux": result["bytes_read"], **{k: c.bytes for k, c in reads.items()}},
        "stages": stages.seconds,
        "segment_runs": [  # one entry per task: a segment's frames [start, start + frames)
            {"index": m.index, "start": m.start, "frames": m.frames, "reused": m.reused, "node_id": m.node_id,
             "node_ip": m.node_ip, "pid": m.pid,
             "seconds": m.seconds, "started": round(m.started, 3), "peak_rss_mb": m.peak_rss_mb,
             "bytes_read": m.bytes_read}
            for m in manifests
        ],
    }
