"""The driver: the flow of one render. Validate and plan; look up what the cache holds;
pick where the tasks run; detect once; put the detections once; run the tasks through the
one task loop, each chunk to the muxer as it is done; publish the video; write the report."""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, replace

from omegaconf import DictConfig, OmegaConf

from raypipe.detection import detector
from raypipe.detection.cache import DetectionCache
from raypipe.detection.detections import Detections
from raypipe.detection.info import DetectionInfo
from raypipe.engine.cache import Reuse
from raypipe.engine.executor import Executor, Streamed, Work
from raypipe.engine.headstart import HeadStart
from raypipe.engine.lock import output_lock
from raypipe.engine.loop import run_tasks
from raypipe.engine.on_ray import RayExecutor, embedded, stage_inputs
from raypipe.engine.progress import Progress
from raypipe.engine.report import Report, build, run_id_of
from raypipe.engine.streaming import SourceStream
from raypipe.engine.task import check_captions
from raypipe.engine.threads import ThreadExecutor
from raypipe.errors import CancelToken
from raypipe.media import ReadCounter
from raypipe.plan.cost import frames_per_task, local_slots, ordered_tasks, worth_starting_ray
from raypipe.plan.timeline import Plan
from raypipe.plan.validate import prepare
from raypipe.storage import Storage

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


@dataclass(frozen=True)
class Rendered:
    report: Report
    plan: Plan
    detections: Detections
    info: DetectionInfo  # the detector's: which ran, why it fell back, its reads
    sheet: object = None  # the detection sheet (an RGB array), where the caller asked for one


def run_location(root: str | None, run_dir: str) -> str:
    """Where a run's files go: the Hydra run directory, or with `storage.root` set (storage
    every node can reach, s3://...), the same <job>/<time> path under that root."""
    if not root:
        return run_dir
    return root.rstrip("/") + "/" + "/".join(os.path.normpath(run_dir).split(os.sep)[-2:])


def render(cfg: DictConfig, run_dir: str, on_result=None, quiet: bool = False, cancel: CancelToken | None = None,
           executor: Executor | None = None, sheet=None) -> Rendered:
    """Renders the job; `on_result(report)` is called once the video is published, before Ray
    shuts down (~1.3 s of waiting for its processes that nobody needs to sit through). Progress
    goes to stderr (a bar on a terminal) unless `quiet`; `cancel` stops the render. `sheet(plan,
    detections, info, counter)` makes report.html's detection sheet (raypipe.look) before the
    report is built, so that report.json counts what it reads."""
    cancel = cancel or CancelToken()
    stages, t0, started = Stages(), time.perf_counter(), time.time()
    run_root = run_location(cfg.storage.root, run_dir)
    store = Storage(run_root)
    with ExitStack() as cleanup:
        reads: dict[str, ReadCounter] = {}
        with stages("validate"):
            plan, output = prepare(cfg, run_root, reads)
            if cfg.job.output:  # a default output is in the run's own directory
                cleanup.enter_context(output_lock(output))
        with stages("cache_lookup"):
            reuse = Reuse.look_up(cfg, plan, store)
            slots = local_slots(cfg.ray) if embedded(cfg.ray) else None  # a cluster's are known once Ray is up
            split = frames_per_task(plan, cfg, slots) if slots else None
            tasks = reuse.pending(ordered_tasks(plan, split)) if slots else None
        executor = executor or choose(cfg, tasks, plan, slots, stages, cancel)
        # Registered before the executor, so that they run after it has stopped: no chunk outside
        # the cache, and no staged input, is left behind.
        cleanup.callback(store.delete_dir, "segments")
        if cfg.storage.root and executor.name != "threads":
            cleanup.callback(store.delete_dir, "inputs")
            with stages("stage_inputs"):
                plan, reuse = stage_inputs(plan, store, reuse)
                if tasks:  # the same ranges, of the segments that read the staged files
                    tasks = [replace(t, segment=plan.segments[t.segment.index]) for t in tasks]
        cleanup.enter_context(executor)
        stream = None
        if cfg.detector.num_gpus:  # in an actor on a node with a GPU: Ray first
            executor.start()
            found = _done(detect(cfg.detector, plan, reuse.detections, executor, stages))
        else:  # on a driver thread, while Ray starts; the first tasks wait only for their sources
            stream = SourceStream(plan, cfg.detector.track_smoothing)
            pool = cleanup.enter_context(ThreadPoolExecutor(1, thread_name_prefix="detect"))
            found = pool.submit(detect, cfg.detector, plan, reuse.detections, None, stages, stream, tasks)
        if isinstance(executor, RayExecutor) and slots and detector.resolve_kind(cfg.detector)[0] != "clip":
            # A driver that loads a model holds its memory: then the rendering is left to Ray.
            executor = cleanup.enter_context(HeadStart(ThreadExecutor(1, cancel), executor))
        if tasks is None:
            split = frames_per_task(plan, cfg, executor.slots)
            tasks = reuse.pending(ordered_tasks(plan, split))
        muxer = executor.muxer(plan.total_frames, plan.duration, plan.audio, output, plan.encode.codec)
        for m in reuse.manifests:
            muxer.add(m)
        every = _first(found)
        works = [Work(i, t, Streamed(stream.for_segment(t.segment), every) if stream else every, plan.encode,
                      *reuse.target(t)) for i, t in enumerate(tasks)]
        progress = Progress(plan.total_frames, len(tasks) + len(reuse.manifests),
                            sum(m.frames for m in reuse.manifests), len(reuse.manifests), quiet)
        with stages("segments"):
            try:
                runs = run_tasks(executor, works, lambda work, m: muxer.add(m), progress, cancel)
            finally:
                progress.close()
        detections, info = found.result()
        cancel.check()  # never publish a render that was told to stop
        with stages("mux"):
            result = muxer.finish()
        manifests = [*reuse.manifests, *runs.manifests]
        with stages("cache_evict"):
            evicted = reuse.evict(cfg.cache.max_gb, manifests)
        stages.seconds["total"] = round(time.perf_counter() - t0, 3)
        image = None
        if sheet is not None:
            with stages("sheet"):
                image = sheet(plan, detections, info, reads.setdefault("sheet", ReadCounter()))
        report = build(plan, result, info, detections, manifests, stages.seconds, executor.name, executor.stats(),
                       run=run_root, run_id=run_id_of(run_dir), max_frames_per_task=split,
                       retries=runs.retries, cache=reuse.summary(manifests, info, evicted), reads=reads,
                       started=started)
        write_record(lambda _: {"report.json": report.to_json()}, run_dir, store)
        if on_result is not None:
            on_result(report)
    return Rendered(report, plan, detections, info, image)


def choose(cfg: DictConfig, tasks, plan: Plan, slots: float | None, stages: Stages, cancel: CancelToken) -> Executor:
    """The driver's threads where Ray would not finish sooner (raypipe.plan.cost), else Ray:
    always on a cluster, and for a detector that needs a GPU."""
    if tasks is not None and cfg.detector.num_gpus == 0 and not worth_starting_ray(
            tasks, plan.encode, slots, cfg.ray.min_saving_s):
        return ThreadExecutor(max(1, min(int(slots), len(tasks) or 1)), cancel)
    return RayExecutor(cfg.ray, stages)


def detect(settings: DictConfig, plan: Plan, found: DetectionCache | None, executor: Executor | None = None,
           stages: Stages | None = None, stream: SourceStream | None = None,
           tasks: list | None = None) -> tuple[Detections, DetectionInfo]:
    """One pass over the distinct sources: in the driver (telling `stream` of each source as it
    is in, in the order `tasks` read them), or for a detector that asks for a GPU in one Ray
    actor on a node that has one (a Ray executor's). Packed for the object store."""
    try:
        with stages("detect") if stages else nullcontext():
            if settings.num_gpus and isinstance(executor, RayExecutor):
                compacted, info = executor.detect(settings, plan, found)
            else:
                compacted, info = detector.detect_all(
                    OmegaConf.to_object(settings), stream.order(tasks, settings.keyframe_rate) if stream
                    else plan.sources, plan.prompts,
                    plan.video_ranges(), found, on_source=stream and stream.heard)
                compacted = {u: compacted[u] for u in plan.sources}
    except BaseException as e:
        if stream is not None:
            stream.fail(e)
        raise
    if info.fallback_reason:
        log.warning("DETECTOR FELL BACK TO SALIENCY: %s", info.fallback_reason)
    detections = Detections.pack(detector.expand(compacted), smoothing=settings.track_smoothing)
    # The faces are known now: before any task on Ray (a stream checked each segment's already).
    check_captions(plan, detections)
    return detections, info


def _done(value) -> Future:
    future = Future()
    future.set_result(value)
    return future


def _first(found: Future) -> Future:
    """The detections alone, of the (detections, info) that `found` will hold."""
    first = Future()

    def settle(f: Future) -> None:
        if f.exception() is not None:
            first.set_exception(f.exception())
        else:
            first.set_result(f.result()[0])

    found.add_done_callback(settle)
    return first


def write_record(files, run_dir: str, store: Storage) -> None:
    """The run's record, `files(folder)` -> {name: bytes}, in its run directory and, where its
    videos went to storage elsewhere, there too, with Hydra's config."""
    for folder in dict.fromkeys((run_dir, store.root)):
        for name, data in files(folder).items():
            Storage(folder).write_bytes(name, data)
    if store.root != run_dir:
        hydra_dir = os.path.join(run_dir, ".hydra")
        for name in sorted(os.listdir(hydra_dir)) if os.path.isdir(hydra_dir) else ():
            store.put_file(os.path.join(hydra_dir, name), f".hydra/{name}")
