"""Many videos in one run. Every row is checked before any work; one detector serves the
whole batch (CLIP loads once), on a thread that detects rows in order, each distinct source
(by content) once, in shared forward passes; a video's tasks join the one task loop as soon
as its sources are detected, at most `batch.max_videos_in_flight` videos at a time, and each
video is muxed and published as soon as its chunks are in. A failing row is recorded and the
others go on; manifest.jsonl in the batch's root says what became of every row as it goes.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace

from omegaconf import DictConfig, OmegaConf

from raypipe.batch.rows import Row, read_rows
from raypipe.batch.videos import Published, Video, check, default_root, plan_video
from raypipe.config import cache_root
from raypipe.detection import detector
from raypipe.detection.cache import DetectionCache, source_id
from raypipe.detection.detections import Detections
from raypipe.engine.cache import Reuse, evict
from raypipe.engine.driver import choose, embedded, run_location, write_record
from raypipe.engine.executor import ExecutorStats, Work
from raypipe.engine.loop import Feed, run_tasks
from raypipe.engine.on_ray import local_inputs, staged_name
from raypipe.engine.progress import Progress
from raypipe.engine.task import check_captions
from raypipe.errors import CancelToken, JobError, MediaError, RaypipeError, first_line
from raypipe.look.batch_page import batch_html
from raypipe.plan.cost import frames_per_task, local_slots, ordered_tasks
from raypipe.plan.variants import single
from raypipe.storage import Storage

log = logging.getLogger("raypipe")


@dataclass
class Record:
    """A row's line in manifest.jsonl."""

    id: str
    row: int
    status: str  # done, failed or skipped
    output: str | None
    frames: int = 0  # rendered by this run (0 for a skipped row)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchReport:
    rows: str
    root: str
    manifest: str
    videos: int
    done: int
    failed: int
    skipped: int
    frames: int
    seconds: float
    videos_per_hour: float
    detector: str  # what ran, or (every source from the cache) what would have
    detector_loads: int
    detector_actors: int  # the detector's Ray actors; 0: the driver detected
    executor: str
    ray_started: bool
    task_seconds: float  # the rendering work: every task's seconds, summed
    # The detection work: each row's looks, the detector's calls and its model's load, summed
    # (in a driver's threads; with detector actors, the seconds the driver waited on them).
    detect_seconds: float
    retries: list  # tasks run again after their worker or node was lost: {"start", "frames", "attempt", "reason"}
    stages: dict
    records: list[Record] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class Manifest:
    """manifest.jsonl, written as the batch goes: a crash leaves a true record. Appended on a
    local disk; rewritten on an object store (which has no append), at most every few seconds."""

    EVERY_S = 5.0

    def __init__(self, root: str):
        self.store, self.records, self._written = Storage(root), [], 0.0
        self.local = "://" not in root
        self.path = self.store.uri("manifest.jsonl")
        if self.local:
            os.makedirs(root, exist_ok=True)
            self._file = open(self.path, "w")

    def add(self, record: Record) -> None:
        self.records.append(record)
        if self.local:
            self._file.write(json.dumps(asdict(record)) + "\n")
            self._file.flush()
        elif time.monotonic() - self._written >= self.EVERY_S:
            self._rewrite()

    def _rewrite(self) -> None:
        self.store.write_bytes("manifest.jsonl", "".join(json.dumps(asdict(r)) + "\n" for r in self.records).encode())
        self._written = time.monotonic()

    def close(self) -> None:
        if self.local:
            self._file.close()
        else:
            self._rewrite()


def checked(cfg: DictConfig, run_dir: str, skip_published: bool = True,
            sources: bool = True) -> tuple[list[Row], list[Video], list[Record], str]:
    """Every row checked as a render checks a job (`sources=False`: all but what reads the
    sources, which a batch checks for each row as it comes to it); the batch itself refused (a
    JobError) where its outputs collide or its table cannot be read."""
    b = cfg.batch
    if not b.rows:
        raise JobError("batch.rows", "is required: a CSV, JSONL or Parquet file with a row per video")
    if b.max_videos_in_flight < 1:
        raise JobError("batch.max_videos_in_flight", f"must be >= 1 (got {b.max_videos_in_flight})")
    if b.detector_actors < 1:
        raise JobError("batch.detector_actors", f"must be >= 1 (got {b.detector_actors})")
    single(cfg, "a batch")
    rows = read_rows(b.rows)
    root = b.root or default_root(cfg)
    base = os.path.dirname(os.path.abspath(b.rows)) if "://" not in b.rows else ""
    allowed = list(b.allowed_roots) if b.allowed_roots is not None else [base or b.rows.rsplit("/", 1)[0]]
    videos, failed, outputs = [], [], {}
    published = Published() if skip_published else None
    for row in rows:
        try:
            video = check(cfg, row, root, base, allowed, run_dir, published, sources)
        except RaypipeError as e:
            failed.append(Record(row.id, row.number, "failed", None, error=str(e)))
            continue
        outputs.setdefault(video.output, []).append(row)
        videos.append(video)
    clashes = [f"rows {', '.join(r.id for r in rs)} -> {out}" for out, rs in outputs.items() if len(rs) > 1]
    if clashes:
        raise JobError("batch.output", f"rows share an output ({'; '.join(clashes)}); name outputs by a unique field")
    return rows, videos, failed, root


@dataclass
class _InFlight:
    video: Video
    muxer: object
    left: int
    started: float
    reuse: Reuse
    detections: Detections
    moved: dict  # its local files -> where they were staged for Ray's nodes
    failed: bool = False


def render_batch(cfg: DictConfig, run_dir: str, quiet: bool = False, cancel: CancelToken | None = None,
                 on_progress=None) -> BatchReport:
    """Renders every row of `cfg.batch.rows`; `on_progress(record)` hears each row's end."""
    cancel = cancel or CancelToken()
    t0, stages = time.perf_counter(), {}
    rows, videos, failed, root = checked(cfg, run_dir, sources=False)
    stages["validate"] = round(time.perf_counter() - t0, 3)
    manifest = Manifest(root)
    for record in failed:
        _end(manifest, record, on_progress, cfg.batch.fail_fast)
    todo = []
    for video in videos:  # published by an earlier run of the same command: done
        if video.published:
            _end(manifest, Record(video.row.id, video.row.number, "skipped", video.output), on_progress, False)
        else:
            todo.append(video)
    detected: queue.Queue = queue.Queue(maxsize=2 * cfg.batch.max_videos_in_flight)
    heard: dict = {"detector": None, "clip_loads": 0}  # what each detection said: the report's
    frames, retries, work_s = 0, [], [0.0]
    spent = {"looks": 0.0, "detect": 0.0}  # the detection work's seconds: each key is one thread's
    with ExitStack() as cleanup:
        slots = local_slots(cfg.ray) if embedded(cfg.ray) else None
        executor = cleanup.enter_context(_executor(cfg, todo, slots, run_dir, cancel) if todo else _Nothing())
        run_root = run_location(cfg.storage.root, run_dir)
        staged = None
        if todo and cfg.storage.root and executor.name != "threads":  # nodes that do not share this disk
            staged = _Staged(Storage(run_root))
            cleanup.callback(staged.store.delete_dir, "inputs")  # what rows detected ahead of a stop staged
        # The detector's actors for the whole batch: on GPU nodes where it asks for them, and on a
        # cluster's nodes (the driver, on a head of a few cores, would cap a cluster's batch at
        # its own looks and forward passes). On one machine the driver's threads detect: they
        # share the renderers' cores either way, and an actor costs its start.
        remote = bool(todo and (cfg.detector.num_gpus or (executor.name == "ray" and executor.nodes > 1)))
        settings = None if remote else OmegaConf.to_object(cfg.detector)
        made: list = []  # here: the one detector, once a source misses the cache
        stop = threading.Event()  # the batch ended: the look and detection threads stop where they wait

        def halt() -> None:
            cancel.check()
            if stop.is_set():
                raise _Stop

        if remote:
            actors = cleanup.enter_context(executor.detector(cfg.detector, cfg.batch.detector_actors, halt))
            in_actors = actors.detect

            def detect(sources, prompts, ranges, cache, looks, moved):
                # No looks: the actors decode their own, from where every node reads them.
                there = {u: moved.get(u, u) for u in sources}
                if cache is not None:
                    cache = DetectionCache(cache.root, {there.get(u, u): k for u, k in cache.keys.items()})
                found, info = in_actors(tuple(there.values()), prompts, {there[u]: r for u, r in ranges.items()},
                                        cache)
                return {u: found[there[u]] for u in sources}, info
        else:
            def detect(sources, prompts, ranges, cache, looks, moved):  # the driver reads the files themselves
                return detector.detect_all(settings, sources, prompts, ranges, cache, made, looks=looks)

        def warm() -> None:  # the model loads while the first rows are looked at
            if made or remote:
                return
            before, t = detector.clip_loads(), time.perf_counter()
            try:
                made.append(detector.make_detector(settings))
            except RaypipeError:  # the first row that needs it fails with the reason, as it would have
                return
            finally:
                spent["detect"] += time.perf_counter() - t
            heard["clip_loads"] += detector.clip_loads() - before

        def counted(*args):
            t = time.perf_counter()
            compacted, info = detect(*args)
            spent["detect"] += time.perf_counter() - t
            heard["detector"], heard["clip_loads"] = info["detector"], heard["clip_loads"] + info["clip_loads"]
            return compacted

        pool = cleanup.enter_context(ThreadPoolExecutor(2, thread_name_prefix="detect"))
        cleanup.callback(stop.set)  # before the pool's exit waits for the look and detection threads
        muxing = cleanup.enter_context(ThreadPoolExecutor(1, thread_name_prefix="mux"))
        looked: queue.Queue = queue.Queue(maxsize=cfg.batch.max_videos_in_flight)
        looking = pool.submit(_look_rows, todo, looked, settings, cancel, stop, run_dir, run_root, spent)
        detection = pool.submit(_detect_rows, looked, detected, counted, warm, cancel, stop, remote,
                                staged.stage if staged else None)
        progress = Progress(0, 0, quiet=quiet, videos=len(todo))  # frames added as each video is planned
        flying: dict[str, _InFlight] = {}
        finishing: list[tuple[_InFlight, Future]] = []
        admitted, next_id = 0, 0

        class _Feed(Feed):
            def __init__(self):
                super().__init__(())

            @property
            def more(self) -> bool:  # rows still to come from detection (which may have died)
                return admitted < len(todo) and not (detection.done() and detected.empty())

            def take(self, n):
                nonlocal admitted, next_id
                # Videos muxed since the last look leave room: with every video in flight
                # rendered and muxing, no task is left to hear of it otherwise.
                _collect()
                works = []
                while admitted < len(todo) and len(flying) < cfg.batch.max_videos_in_flight:
                    try:
                        video, found, reuse, moved = detected.get_nowait()
                    except queue.Empty:
                        break
                    admitted += 1
                    if isinstance(found, BaseException):
                        _fail(video, found, moved)
                        continue
                    works += _admit(video, found, reuse, moved)
                return works

        def _admit(video: Video, detections: Detections, reuse: Reuse, moved: dict) -> list[Work]:
            nonlocal next_id
            plan = video.plan  # its chunks' keys follow the files' content, wherever they are read from
            split = frames_per_task(plan, video.cfg, executor.slots)
            tasks = reuse.pending(ordered_tasks(plan, split))
            if moved:  # Ray's nodes read the staged copies
                plan, reuse = plan.with_sources(moved), reuse.moved(moved)
                tasks = [replace(t, segment=plan.segments[t.segment.index]) for t in tasks]
                detections = replace(detections, keys=tuple(moved.get(k, k) for k in detections.keys))
            muxer = executor.muxer(plan.total_frames, plan.duration, plan.audio, video.output, plan.encode.codec)
            for m in reuse.manifests:
                muxer.add(m)
            progress.add_frames(plan.total_frames, sum(m.frames for m in reuse.manifests))
            entry = flying[video.row.id] = _InFlight(video, muxer, len(tasks), time.perf_counter(), reuse, detections,
                                                     moved)
            works = []
            for t in tasks:
                works.append(Work(next_id, t, detections, plan.encode, *reuse.target(t), tag=video.row.id))
                next_id += 1
            if not tasks:
                _finish(entry)
            return works

        def _finish(entry: _InFlight) -> None:
            finishing.append((entry, muxing.submit(entry.muxer.finish)))

        def _fail(video: Video, error: BaseException, moved: dict | None = None) -> None:
            entry = flying.pop(video.row.id, None)
            _release(entry.moved if entry else moved)
            if entry is not None:  # what an admitted row holds goes with it, not at the batch's end
                executor.release(entry.detections)
                entry.muxer.abandon()
                # its tasks still running may write chunks yet: the folder goes at the batch's end
                cleanup.callback(entry.reuse.run_store.delete_dir, "segments")
            video.unload()
            _end(manifest, Record(video.row.id, video.row.number, "failed", None, error=first_line(error)), on_progress,
                 cfg.batch.fail_fast, error)
            progress.video_done(f"{video.row.where}: failed: {first_line(error)}")

        def _release(moved: dict | None) -> None:
            if staged and moved:
                staged.release(moved)

        def on_done(work: Work, m) -> None:
            entry = flying.get(work.tag)
            if entry is None or entry.failed:
                return
            entry.muxer.add(m)
            work_s[0] += m.seconds
            entry.left -= 1
            if entry.left == 0:
                _finish(entry)
            _collect()

        def on_error(work: Work, error: BaseException) -> bool:
            entry = flying.get(work.tag)
            if entry is None or entry.failed:
                return True  # another task of a row already failed
            entry.failed = True
            _fail(entry.video, error)
            return True

        def _collect(wait: bool = False) -> None:
            nonlocal frames
            for entry, future in list(finishing):
                if not (wait or future.done()):
                    continue
                finishing.remove((entry, future))
                try:
                    result = future.result()  # first: the mux reads the chunks and the staged files
                except RaypipeError as e:
                    _fail(entry.video, e)  # which lets go of what the row holds
                    continue
                flying.pop(entry.video.row.id, None)
                _release(entry.moved)
                executor.release(entry.detections)  # in the object store only while the video renders
                entry.reuse.run_store.delete_dir("segments")  # chunks outside the cache (render.cache=false)
                frames += result["frames"]
                entry.video.unload()
                record = Record(entry.video.row.id, entry.video.row.number, "done", entry.video.output,
                                result["frames"], round(time.perf_counter() - entry.started, 3))
                _end(manifest, record, on_progress, False)
                progress.video_done(f"{entry.video.row.where}: {entry.video.output}")

        try:
            t1 = time.perf_counter()
            while _Feed().more or flying:
                retries += run_tasks(executor, _Feed(), on_done, progress, cancel, on_error=on_error,
                                     wanted=lambda work: work.tag in flying).retries
                _collect(wait=not _Feed().more)
            # A detection thread that died says why first: the look thread may be blocked on
            # the queue that it no longer takes from, until the batch's end stops it.
            detection.result()
            looking.result()
            if remote:  # every actor's loads, those of calls that failed after loading too
                heard["clip_loads"] = actors.loads
            stages["render"] = round(time.perf_counter() - t1, 3)
        finally:
            # After a failure (fail_fast, a stop), the muxes under way still publish their
            # videos (the mux pool's exit waits for them): the manifest says so.
            while finishing:
                try:
                    _collect(wait=True)
                except Exception as e:  # another row failing while the first failure is on its way up
                    log.debug("after the batch stopped: %s", e)
            progress.close()
            manifest.close()
        stats = executor.stats()
        root_cache = cache_root(cfg)
        if root_cache:
            evict(root_cache, int(cfg.cache.max_gb * 1e9), set())
    records = manifest.records
    seconds = round(time.perf_counter() - t0, 3)
    done = sum(r.status == "done" for r in records)
    report = BatchReport(
        rows=cfg.batch.rows, root=root, manifest=manifest.path, videos=len(rows), done=done,
        failed=sum(r.status == "failed" for r in records), skipped=sum(r.status == "skipped" for r in records),
        frames=frames, seconds=seconds, videos_per_hour=round(3600 * done / seconds, 1) if seconds else 0.0,
        detector=heard["detector"] or detector.resolve_kind(cfg.detector)[0],
        detector_loads=heard["clip_loads"], detector_actors=cfg.batch.detector_actors if remote else 0,
        executor=executor.name, ray_started=stats.ray_started, task_seconds=round(work_s[0], 3),
        detect_seconds=round(spent["looks"] + spent["detect"], 3), retries=retries,
        stages=stages, records=records)
    record = report.to_dict()
    write_record(lambda folder: {"report.json": json.dumps(record, indent=2).encode(),
                                 "report.html": batch_html(record, folder).encode()},
                 run_dir, Storage(run_location(cfg.storage.root, run_dir)))
    return report


def _end(manifest: Manifest, record: Record, on_progress, fail_fast: bool, error: BaseException | None = None) -> None:
    manifest.add(record)
    if on_progress is not None:
        on_progress(record)
    if fail_fast and record.status == "failed":
        raise error if isinstance(error, RaypipeError) else JobError(f"row {record.id}", record.error or "failed")


def _executor(cfg: DictConfig, todo: list[Video], slots: float | None, run_dir: str, cancel: CancelToken):
    """Threads or Ray, by the rule one render follows, for the batch's work: its first video's
    tasks, as many times as it has videos (the rest are planned as the batch comes to them)."""
    for video in todo if slots else ():
        try:
            plan = plan_video(video, run_dir)
        except RaypipeError:  # the row's own failure is recorded when detection comes to it
            video.unload()
            continue
        tasks = ordered_tasks(plan, frames_per_task(plan, video.cfg, slots))
        return choose(cfg, tasks * len(todo), plan, slots, None, cancel)
    return choose(cfg, None, None, None, None, cancel)


class _Nothing:
    """No video to render (all skipped or failed): no executor to start."""

    name = "none"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def stats(self) -> ExecutorStats:
        return ExecutorStats()


# Sources whose detections the batch keeps for rows that show them again (a logo in every
# row, a photo shared by a few): the most recently used, so memory stays flat however many
# rows there are; one dropped is found again in the detection cache.
KNOWN_SOURCES = 1024


class _Staged:
    """A batch's local files, for Ray's nodes that do not share the driver's disk: each copied
    into the run's storage once, when the first row that reads it is detected, and deleted when
    the last row in flight that reads it is out. A long batch's storage holds the files of the
    rows in flight and detected ahead, not every row's. The detection thread stages; the
    renderers' thread releases."""

    def __init__(self, store: Storage):
        self.store, self.lock = store, threading.Lock()
        self.uses: dict[str, list] = {}  # local path -> [its staged URI, rows holding it]

    def stage(self, plan) -> dict[str, str]:
        moved: dict[str, str] = {}
        try:
            for path in dict.fromkeys(local_inputs(plan)):
                with self.lock:
                    entry = self.uses.get(path)
                    if entry is not None:
                        entry[1] += 1
                if entry is None:  # the upload outside the lock: releases do not wait for it
                    try:
                        uri = self.store.put_file(path, staged_name(path))
                    except OSError as e:
                        raise MediaError(f"cannot stage {path} for Ray's nodes: {e.strerror or e}") from None
                    with self.lock:
                        entry = self.uses.setdefault(path, [uri, 0])
                        entry[1] += 1
                moved[path] = entry[0]
        except BaseException:
            self.release(moved)
            raise
        return moved

    def release(self, moved: dict[str, str]) -> None:
        with self.lock:  # the delete too: a stage of the same path after it uploads anew
            for path in moved:
                entry = self.uses[path]
                entry[1] -= 1
                if entry[1] == 0:
                    del self.uses[path]
                    self.store.delete(staged_name(path))


class _Stop(Exception):
    """The batch ended (an error, or fail_fast) while detection was ahead of it."""


def _put(out: queue.Queue, item, cancel: CancelToken, stop: threading.Event) -> None:
    while True:
        try:
            return out.put(item, timeout=0.2)
        except queue.Full:
            cancel.check()
            if stop.is_set():
                raise _Stop from None


def _get(source: queue.Queue, cancel: CancelToken, stop: threading.Event):
    while True:
        try:
            return source.get(timeout=0.2)
        except queue.Empty:
            cancel.check()
            if stop.is_set():
                raise _Stop from None


_END = object()  # the look stage's last item
_WARM = object()  # the look stage found a source that the cache does not hold: make the detector now


def _look_rows(videos: list[Video], out: queue.Queue, settings, cancel: CancelToken, stop: threading.Event,
               run_dir: str, run_root: str, spent: dict) -> None:
    """The rows in order, each made ready for the detector without it: planned (the checks that
    read its sources), its cache keys looked up once (the detections' here, its chunks' when it
    is admitted) and, given the detector's `settings` (None: the detector's actors decode for
    themselves), its stills that the cache does not hold and no row before showed decoded and
    their faces found, on every core. This runs while the model loads (it says when to load
    it, on the first source that misses the cache) and while it detects the rows before; `out`
    holds a few rows, so the looks held stay few. Each row comes out as (video, its cache
    look-up or its error, its looks); `spent["looks"]` sums the looks' seconds."""
    side = detector.presumed_side(settings) if settings is not None else 0
    seen: OrderedDict[str, None] = OrderedDict()  # the source ids looked at (or cached), most recent last
    warned = settings is None

    def look(uri: str) -> tuple[detector.Look, float]:
        t = time.perf_counter()
        return detector.look(settings, uri, side), time.perf_counter() - t

    # A row's stills side by side (the Haar passes let go of the GIL): where the renderers
    # wait, above all when the video is small and its photos' faces cost more than its frames,
    # every core looks.
    workers = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="look")
    try:
        for video in videos:
            cancel.check()
            try:
                plan = video.plan or plan_video(video, run_dir)
                reuse = Reuse.look_up(video.cfg, plan, Storage(f"{run_root.rstrip('/')}/videos/{video.row.id}"))
                stills = []
                for uri in plan.sources if settings is not None else ():
                    sid = source_id(uri)
                    if sid in seen:
                        continue
                    if reuse.detections is None or reuse.detections.get(uri) is None:
                        if not warned:
                            _put(out, _WARM, cancel, stop)
                            warned = True
                        if uri not in plan.video_ranges():  # a video's keyframes: decoded as it is detected
                            stills.append(uri)
                    seen[sid] = None
                    if len(seen) > KNOWN_SOURCES:
                        seen.popitem(last=False)
                looks = {}
                for uri, (seen_as, seconds) in zip(stills, workers.map(look, stills)):
                    looks[uri] = seen_as
                    spent["looks"] += seconds
            except RaypipeError as e:
                _put(out, (video, e, {}), cancel, stop)
                continue
            _put(out, (video, reuse, looks), cancel, stop)
    except _Stop:
        return
    finally:  # the detection stage takes rows until it sees this, or until the batch stops
        workers.shutdown()
        while not stop.is_set() and cancel.reason is None:
            try:
                out.put(_END, timeout=0.2)
                break
            except queue.Full:
                pass


def _detect_rows(looked: queue.Queue, out: queue.Queue, detect, warm, cancel: CancelToken, stop: threading.Event,
                 shared_passes: bool, stage=None) -> None:
    """The looked rows in order, each distinct source once by content: a source that many rows
    show is detected for the first and reused by the rest. With `shared_passes` (the detector's
    actors: a GPU's forward pass of 16 images costs little more than one of 1) several rows'
    sources share the model's passes, up to detector.batch_size images each, but only while
    rendering has rows to go on with: a row is detected on its own whenever the renderers wait
    for one (at the start above all). On a CPU an image costs the same in a pass of 1 as of 16
    (ViT-B-16: 650 ms), so each row is detected on its own. Detection blocks once `out` is full,
    so the rows it holds detected ahead stay few. `stage(plan)` copies a row's local files to
    where Ray's nodes read them (the detector's actors, then the row's tasks), while the
    renderers work on the rows before it; `warm()`
    makes the detector when the look stage says that one will be needed. Each row comes out as
    (video, its Detections or its error, its cache look-up, its staged files)."""
    known: OrderedDict[tuple, tuple] = OrderedDict()  # a source's identity (`_keys`) -> compacted detection
    group: list[tuple] = []  # (video, its cache look-up, its looks)
    identities: dict[str, dict] = {}  # the group's rows' `_keys`, found once (on S3 a request per source)

    def flush() -> None:
        staged = []
        for video, reuse, looks in group:  # before detection: actors on other nodes read the copies
            try:
                staged.append((video, reuse, looks, stage(video.plan) if stage is not None else {}))
            except RaypipeError as e:
                _put(out, (video, e, None, {}), cancel, stop)
        for video, found, reuse, moved in _detect_group(staged, known, detect, identities) if staged else ():
            _put(out, (video, found, reuse, moved), cancel, stop)
        group.clear()
        identities.clear()
        while len(known) > KNOWN_SOURCES:
            known.popitem(last=False)

    try:
        while (item := _get(looked, cancel, stop)) is not _END:
            cancel.check()
            if item is _WARM:
                warm()
                continue
            video, reuse, looks = item
            if isinstance(reuse, BaseException):
                _put(out, (video, reuse, None, {}), cancel, stop)
                continue
            try:
                keys = _keys(video)
            except RaypipeError as e:  # a source gone since its row was looked at
                _put(out, (video, e, None, {}), cancel, stop)
                continue
            if group and group[0][0].cfg.job.prompts != video.cfg.job.prompts:
                flush()  # a pass has one set of prompts
            group.append(item)
            identities[video.row.id] = keys
            if not shared_passes or out.empty() or len(
                    {k for ks in identities.values() for k in ks.values()} - known.keys()) >= \
                    video.cfg.detector.batch_size:
                flush()
        if group:
            flush()
    except _Stop:
        return


def _keys(video: Video) -> dict[str, tuple]:
    """Each source's detection identity in this row: the source's content, the prompts it is
    detected for and, for a video, the spans of it that the row shows (another row's spans
    of the same clip are other keyframes)."""
    spans = video.plan.video_ranges()
    return {u: (source_id(u), tuple(video.cfg.job.prompts), spans.get(u)) for u in video.plan.sources}


def _detect_group(group: list[tuple], known: dict, detect, identities: dict[str, dict]):
    """`detect(sources, prompts, video_ranges, cache, looks, staged)`: the batch's one detector,
    here or in its actors, on the group's (video, cache look-up, looks, staged files), which
    share their prompts; `identities` holds each row's `_keys`. Yields (video, its Detections
    or its error, cache look-up, staged)."""
    cfg = group[0][0].cfg
    ids = [identities[v.row.id] for v, *_ in group]
    first = {}  # identity -> (source, the first row that shows it, its cache look-up, its looks)
    for (v, reuse, looks, _), keys in zip(group, ids):
        for u in v.plan.sources:
            first.setdefault(keys[u], (u, v, reuse, looks))
    fresh = [(i, u, v, reuse, looks) for i, (u, v, reuse, looks) in first.items() if i not in known]
    for i in first.keys() & known.keys():
        known.move_to_end(i)  # used again: kept longest
    staged = {path: uri for *_, moved in group for path, uri in moved.items()}
    try:
        while fresh:  # a call names each source once: a clip that rows show over other spans waits for the next
            call, later, names = [], [], set()
            for item in fresh:
                (later if item[1] in names else call).append(item)
                names.add(item[1])
            fresh = later
            ranges = {u: i[2] for i, u, _, _, _ in call if i[2] is not None}  # a clip's spans, in its identity
            keys = {}
            for _, u, _, reuse, _ in call:
                if (found := reuse.detections) is not None:
                    keys[u], root = found.keys[u], found.root
            cache = DetectionCache(root, keys) if keys else None
            looks = {u: looks[u] for _, u, _, _, looks in call if u in looks}
            compacted = detect(tuple(u for _, u, _, _, _ in call), tuple(cfg.job.prompts), ranges, cache, looks,
                               staged)
            for i, u, _, _, _ in call:
                known[i] = compacted[u]
    except RaypipeError as e:
        if len(group) == 1:
            yield group[0][0], e, None, group[0][3]
            return
        for item in group:  # find the row whose source failed; the others go on
            yield from _detect_group([item], known, detect, identities)
        return
    for (v, reuse, _, moved), keys in zip(group, ids):
        try:
            subjects = detector.expand({u: known[keys[u]] for u in v.plan.sources})
            detections = Detections.pack(subjects, smoothing=v.cfg.detector.track_smoothing)
            check_captions(v.plan, detections)
        except RaypipeError as e:
            yield v, e, None, moved
            continue
        yield v, detections, reuse, moved
