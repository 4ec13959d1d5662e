"""The engine: it lives as long as its caller wants and holds what costs to start (the
executor, the detector, the task loop, the muxes), and takes videos as they come.

    submit(spec) -> handle      from any thread; the handle gives status, progress, cancel, result
    run()                       drives the loop on the calling thread (Ray starts on the main one)
    seal()                      no more videos: run() returns once every one has ended

A video goes: look (plan, cache look-up, looks) -> detect (once per source, by content) ->
admitted (at most `max_in_flight` at a time; its tasks join the one task loop) -> muxed ->
published, and ends succeeded, failed or cancelled; what it holds (its detections in the
object store, staged inputs, its muxer, chunks outside the cache) goes when it ends. Cancelling
one video leaves the others running. Nothing the engine holds grows with the videos it has
rendered.

A single render is an engine given one video (it detects on a thread while the first tasks
render the sources already in, and Ray starts); a batch is an engine fed by its rows.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from omegaconf import DictConfig, OmegaConf

from raypipe.config import cache_root
from raypipe.engine.cache import evict
from raypipe.engine.choice import choose
from raypipe.engine.detecting import (
    ActorDetector,
    DetectStage,
    Gate,
    LocalDetector,
    LookStage,
    NoMore,
)
from raypipe.engine.executor import Executor, Streamed, Work
from raypipe.engine.loop import Feed, run_tasks
from raypipe.engine.progress import Progress
from raypipe.engine.report import build, run_id_of
from raypipe.engine.staging import Stager
from raypipe.engine.streaming import SourceStream
from raypipe.engine.task import SegmentManifest, lower_priority
from raypipe.engine.video import VideoEnd, VideoHandle, VideoRun, VideoSpec, VideoStatus
from raypipe.errors import Cancelled, CancelToken, Interrupted, RaypipeError, first_line
from raypipe.plan.cost import frames_per_task, ordered_tasks
from raypipe.storage import Storage

log = logging.getLogger("raypipe")

EVICT_EVERY_S = 60.0  # a long-lived engine bounds the cache this often at most (a listing of it all)


@dataclass(frozen=True)
class EngineOptions:
    run_root: str  # where the videos' chunks outside the cache and staged inputs go
    run_dir: str  # the run's local folder (its id names the reports)
    expected: int | None = 1  # videos the caller will submit; None: unbounded (a service)
    max_in_flight: int = 1
    detector_actors: int = 1
    quiet: bool = True
    # The niceness of all its work: its threads (stages, muxes, the driver's renders, the
    # detector's) and the tasks on Ray's workers. A service sets it, so that its HTTP requests,
    # on threads of the same process, are answered first while renders take every core.
    nice: int = 0


@dataclass
class EngineStats:
    """What the engine saw over its life, for a batch's report."""

    executor: str = "none"
    ray_started: bool = False
    detector: str | None = None  # what detected, as the last detection said
    detector_loads: int = 0
    detector_actors: int = 0
    task_seconds: float = 0.0
    detect_seconds: float = 0.0
    frames: int = 0
    retries: list[dict] = field(default_factory=list)


class _Idle(Executor):
    """No video could be planned: nothing to start (no Ray for nothing)."""

    name = "none"
    slots = 1.0

    def submit(self, work: Work) -> None:
        raise AssertionError("an idle engine was given work")

    def wait(self, timeout: float) -> list:
        return []

    def progress(self) -> tuple[int, int]:
        return 0, 0

    def cancel(self) -> None:
        pass

    def muxer(self, *args):
        raise AssertionError("an idle engine was given a video")


class Engine:
    def __init__(self, cfg: DictConfig, options: EngineOptions, cancel: CancelToken | None = None,
                 executor: Executor | None = None):
        self.cfg, self.options = cfg, options  # cfg: the ray, detector, cache and storage sections that hold for all
        self.cancel = cancel or CancelToken()
        self.gate = Gate(self.cancel)
        self.executor = executor
        self.detector = None
        self.stager: Stager | None = None
        self.stats = EngineStats()
        self._waiting: list[VideoRun] = []  # submitted before the executor is chosen
        self._lock = threading.Lock()
        self._looks: queue.Queue = queue.Queue()  # -> LookStage
        self._looked: queue.Queue = queue.Queue(maxsize=max(1, options.max_in_flight))
        self._ready: queue.Queue = queue.Queue(maxsize=2 * max(1, options.max_in_flight))
        self._sealed = False
        self._submitted = self._ended = 0
        self._flying: dict[str, VideoRun] = {}
        self._muxing: list[tuple[VideoRun, Future]] = []
        self._threads: list[threading.Thread] = []
        self._mux_pool = ThreadPoolExecutor(1, thread_name_prefix="mux")
        self._next_id = 0
        self._evicted_at = time.monotonic()
        self._progress: Progress | None = None
        self.look_stage: LookStage | None = None
        self._early: VideoRun | None = None  # a single render's video, admitted before its detection ends

    # --- the callers' side ----------------------------------------------------------------

    def submit(self, spec: VideoSpec, store: Storage) -> VideoHandle:
        """`store`: where this video's chunks outside the cache go (its `segments` folder)."""
        cancel = CancelToken(parent=self.cancel)
        run = VideoRun(spec, VideoHandle(spec.id, cancel), cancel, store)
        with self._lock:
            if self._sealed:
                raise RuntimeError("the engine takes no more videos")
            self._submitted += 1
            if self.look_stage is None:
                self._waiting.append(run)
            else:
                self._looks.put(run)
        return run.handle

    def seal(self) -> None:
        with self._lock:
            self._sealed = True
            if self.look_stage is not None:
                self._looks.put(NoMore())

    # --- the loop -------------------------------------------------------------------------

    def run(self, stop=None) -> None:
        """Until sealed and every video has ended; on the caller's thread. `stop()`, asked
        between the loop's steps, raises to end the engine early (a batch's fail_fast)."""
        lower_priority(self.options.nice)  # the threads and processes it starts inherit it
        self._progress = Progress(0, 0, quiet=self.options.quiet,
                                  videos=None if self.options.expected == 1 else self.options.expected)
        try:
            self._choose()
            feed = EngineFeed(self, stop)
            # The loop returns when no task is in flight and the feed has none; videos still
            # muxing, or admitted with all their chunks cached, are waited for here.
            while feed.more or self._flying or self._muxing:
                run_tasks(self.executor, feed, self._on_done, self._progress, self.cancel,
                          on_error=self._on_error, wanted=self._wanted, on_retry=self._on_retry)
                self._collect(wait=not feed.more)
        finally:
            self._progress.close()

    def _choose(self) -> None:
        """Threads or Ray, by the measured rule (raypipe.plan.cost), from the first video that
        plans: its tasks as many times as videos are expected. None plans: nothing starts."""
        first = None
        while first is None:
            with self._lock:
                run = self._waiting.pop(0) if self._waiting else None
                sealed = self._sealed
            if run is None:
                if sealed:
                    break
                self.gate.check()
                time.sleep(0.05)
                continue
            try:
                with run.stages("validate"):
                    run.plan = run.spec.plan()
                first = run
            except RaypipeError as e:
                self._end(run, VideoStatus.FAILED, e)
        if first is None:
            self.executor = self.executor or _Idle()
            self._start_stages(None)
            return
        chosen, tasks = choose(self.cfg, first, self.options.expected, self.cancel, given=self.executor)
        self.executor = chosen
        self._start_stages(first, tasks)

    def _start_stages(self, first: VideoRun | None, tasks=None) -> None:
        ex, opts = self.executor, self.options
        if self.cfg.storage.root and not ex.reads_driver_disk:  # nodes that do not share this disk
            self.stager = Stager(Storage(opts.run_root))
        remote = bool(self.cfg.detector.num_gpus) or (opts.expected != 1 and ex.nodes > 1)
        if first is not None and remote:  # Ray first: the actors live on its nodes
            ex.start()
            pool = ex.detector_pool(self.cfg.detector, opts.detector_actors, self.gate.check)
            self.detector = ActorDetector(pool, opts.detector_actors)
        else:
            self.detector = LocalDetector(OmegaConf.to_object(self.cfg.detector), self._rendering)
        streamed = first is not None and not remote and opts.expected == 1
        if streamed:  # its first tasks render the sources already in, while the rest are detected
            if self.stager is not None:  # detected from the staged copies its tasks will read
                with first.stages("stage_inputs"):
                    first.moved = self.stager.stage(first.plan)
                first.repoint()
            first.stream = SourceStream(first.plan, self.cfg.detector.track_smoothing)
            first.order = first.stream.order(tasks, self.cfg.detector.keyframe_rate)
        ahead = not remote and opts.expected != 1
        looks = LookStage(self._looks, self._looked, self.gate, self.cfg.detector, ahead)
        detects = DetectStage(self._looked, self._ready, self.gate, self.detector, self.stager,
                              shared_passes=remote)
        self._threads += [self.gate.thread("look", looks.run), self.gate.thread("detect", detects.run)]
        with self._lock:
            for run in ([first] if first else []) + self._waiting:
                self._looks.put(run)
            self._waiting.clear()
            if self._sealed:
                self._looks.put(NoMore())
            self.look_stage = looks
        if streamed:
            self._early = first
            first.admitted = True

    def _rendering(self) -> bool:
        """Whether a video's tasks or mux are under way (asked from the detect stage's thread)."""
        return bool(self._flying or self._muxing)

    # --- admission, chunks, ends ----------------------------------------------------------

    def _admit(self, run: VideoRun) -> list[Work]:
        if run.cancel.reason is not None:
            self._end(run, VideoStatus.CANCELLED, run.cancel.reason)
            return []
        streamed = run.stream is not None
        if not streamed:
            if run.detected.exception() is not None:
                self._end(run, VideoStatus.FAILED, run.detected.exception())
                return []
            detections = run.detections()
        else:
            detections = _every(run.detected)
        plan, reuse = run.plan, run.reuse
        run.split = frames_per_task(plan, run.cfg, self.executor.slots)
        tasks, run.cached = reuse.pending(ordered_tasks(plan, run.split))
        if run.moved and not run.repointed:  # Ray's nodes read the staged copies
            run.repoint()
            plan, reuse = run.plan, run.reuse
            tasks = [replace(t, segment=plan.segments[t.segment.index]) for t in tasks]
            detections = replace(detections, keys=tuple(run.moved.get(k, k) for k in detections.keys))
        run.detections_held = detections
        run.muxer = self.executor.muxer(plan.total_frames, plan.duration, plan.audio, run.spec.output,
                                        plan.encode.codec)
        for m in run.cached:
            run.muxer.add(m)
        self._progress.add_video(plan.total_frames, len(tasks) + len(run.cached),
                                 sum(m.frames for m in run.cached), len(run.cached))
        run.left = run.in_flight = len(tasks)
        run.handle._set(VideoStatus.RENDERING, frames=sum(m.frames for m in run.cached))
        run.rendering_started = time.perf_counter()
        self._flying[run.id] = run
        if streamed:
            works = [Work(self._next_id + i, t, Streamed(run.stream.for_segment(t.segment), detections),
                          plan.encode, *reuse.target(t), tag=run.id, nice=self.options.nice)
                     for i, t in enumerate(tasks)]
        else:
            works = run.works(tasks, detections, self._next_id, self.options.nice)
        self._next_id += len(works)
        if not tasks:
            self._mux(run)
        return works

    def _on_done(self, work: Work, m: SegmentManifest) -> None:
        run = self._flying.get(work.tag)
        if run is None:
            return
        run.in_flight -= 1
        if run.failed:
            self._maybe_clean(run)
            return
        self.stats.task_seconds += m.seconds
        if run.chunk_done(m):
            self._mux(run)
        self._collect()

    def _on_error(self, work: Work, error: BaseException) -> bool:
        run = self._flying.get(work.tag)
        if run is None:
            return True
        run.in_flight -= 1
        if not run.failed:
            self._end(run, VideoStatus.CANCELLED if run.cancel.reason else VideoStatus.FAILED, error)
        self._maybe_clean(run)
        return True

    def _wanted(self, work: Work) -> bool:
        """A lost task is run again only for a video still going; one not, is out of flight."""
        run = self._flying.get(work.tag)
        if run is not None and not run.failed:
            return True
        if run is not None:
            run.in_flight -= 1
            self._maybe_clean(run)
        return False

    def _on_retry(self, work: Work, entry: dict) -> None:
        self.stats.retries.append(entry)
        run = self._flying.get(work.tag)
        if run is not None:
            run.retries.append(entry)

    def _mux(self, run: VideoRun) -> None:
        if run.cancel.reason is not None:  # never publish a video that was told to stop
            self._end(run, VideoStatus.CANCELLED, run.cancel.reason)
            return
        run.handle._set(VideoStatus.MUXING)
        run.mux_started = time.perf_counter()
        self._muxing.append((run, self._mux_pool.submit(self._finish_mux, run)))

    @staticmethod
    def _finish_mux(run: VideoRun) -> dict:
        try:
            run.detected.result()  # a streamed video's detection ends before it is published
        except BaseException:
            run.muxer.abandon()
            raise
        return run.muxer.finish()

    def _collect(self, wait: bool = False) -> None:
        for run, future in list(self._muxing):
            if not (wait or future.done()):
                continue
            self._muxing.remove((run, future))
            try:
                result = future.result()  # first: the mux reads the chunks and the staged files
            except (RaypipeError, Interrupted) as e:
                self._end(run, VideoStatus.FAILED, e)
                continue
            run.stages.seconds["mux"] = round(time.perf_counter() - run.mux_started, 3)
            self._publish(run, result)

    def _publish(self, run: VideoRun, result: dict) -> None:
        detections, info = run.detected.result()
        self.stats.frames += result["frames"]
        self.stats.detector = info.detector
        evicted = {}
        with run.stages("cache_evict"):
            if self.options.expected == 1:
                evicted = run.reuse.evict(self.cfg.cache.max_gb, [*run.cached, *run.manifests])
            elif time.monotonic() - self._evicted_at >= EVICT_EVERY_S:
                self._evict()
        run.stages.seconds["segments"] = round(run.mux_started - run.rendering_started, 3)
        run.stages.seconds["total"] = round(time.perf_counter() - run.t0, 3)
        manifests = [*run.cached, *run.manifests]
        report = build(run.plan, result, info, detections, manifests, run.stages.seconds, self.executor.name,
                       self.executor.stats(), run=run.store.root, run_id=run_id_of(run.spec.run_dir),
                       max_frames_per_task=run.split, retries=run.retries,
                       cache=run.reuse.summary(manifests, info, evicted), reads=run.spec.reads, started=run.started)
        self._end(run, VideoStatus.SUCCEEDED, report=report, frames=result["frames"], found=(detections, info))

    def _end(self, run: VideoRun, status: VideoStatus, error: BaseException | None = None, report=None,
             frames: int = 0, found: tuple = (None, None)) -> None:
        """The video's end, whatever it is: what it holds goes now (chunks still being written by
        its tasks go when the last of them is out)."""
        if run.handle.done():  # ended already: once is all
            return
        run.failed = status is not VideoStatus.SUCCEEDED
        if run.muxer is not None and run.failed:
            run.muxer.abandon()
        if run.detections_held is not None:
            self.executor.release(run.detections_held)
            run.detections_held = None
        if self.stager is not None and run.moved:
            self.stager.release(run.moved)
            run.moved = {}
        if run.stream is not None and not run.detected.done():
            run.stream.fail(error or Cancelled("its video ended"))
        if not run.failed or run.in_flight == 0:
            self._flying.pop(run.id, None)
            run.store.delete_dir("segments")  # chunks outside the cache (render.cache=false)
        if run.failed and error is not None and self.executor is not None and run.id in self._flying:
            self.executor.drop(run.id)
        seconds = round(time.perf_counter() - (run.rendering_started or run.t0), 3)
        end = VideoEnd(status, report, error, frames, seconds, run.plan if report else None, *found)
        run.spec.unload()
        self._ended += 1
        run.handle._finish(end)  # its listeners first: a batch prints the video's path before the log line
        if self._progress is not None and self.options.expected != 1:  # one video's end is the CLI's to say
            where, said = run.spec.where or run.spec.id, first_line(error) if error else ""
            if said.startswith(f"{where}: "):  # a row's error names its row itself
                said = said[len(where) + 2:]
            self._progress.video_done(f"{where}: {run.spec.output}" if not run.failed
                                      else f"{where}: {status.value}: {said}")

    def _maybe_clean(self, run: VideoRun) -> None:
        if run.in_flight <= 0 and run.failed:
            self._flying.pop(run.id, None)
            run.store.delete_dir("segments")

    def _evict(self) -> None:
        root = cache_root(self.cfg)
        if root:
            evict(root, int(self.cfg.cache.max_gb * 1e9), set())
        self._evicted_at = time.monotonic()

    # --- the loop's feed ------------------------------------------------------------------

    def more(self) -> bool:
        """Whether videos may still come: until sealed and every one has ended, or closed."""
        if self.gate.error is not None:  # a stage died of a bug: the loop ends with it
            raise self.gate.error
        if self.gate.closed.is_set():
            return False
        with self._lock:
            return not (self._sealed and self._ended >= self._submitted and not self._waiting)

    def take(self) -> list[Work]:
        """The tasks of the videos admitted now: detected (or, one video's, streamed), up to
        the bound of videos in flight; videos cancelled alone leave first, and muxed ones."""
        for run in list(self._flying.values()):
            # once its mux has begun, the mux ends it: abandoning the muxer under it published the video anyway
            if run.cancel.reason is not None and not run.failed and not run.mux_started:
                self._end(run, VideoStatus.CANCELLED, run.cancel.reason)
        self._collect()
        works = []
        if self._early is not None:
            run, self._early = self._early, None
            works += self._admit(run)
        while len(self._flying) < self.options.max_in_flight:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, NoMore) or item.admitted:  # a streamed video, admitted before its detection ended
                continue
            item.admitted = True
            works += self._admit(item)
        return works

    # --- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Stops the stages, lets the muxes under way publish, and releases the executor."""
        self.gate.closed.set()
        try:
            while self._muxing:
                try:
                    self._collect(wait=True)
                except Exception as e:  # another video failing while the first failure is on its way up
                    log.debug("after the engine stopped: %s", e)
            for run in list(self._flying.values()):
                if not run.handle.done():
                    self._end(run, VideoStatus.CANCELLED, self.cancel.reason or Cancelled("the engine stopped"))
                run.store.delete_dir("segments")
            self._flying.clear()
            for thread in self._threads:
                thread.join()
            self._mux_pool.shutdown(wait=True)
            if self.detector is not None:
                self.stats.detector_loads = self.detector.loads
                self.stats.detector_actors = self.detector.actors if self.detector.remote else 0
                self.stats.detect_seconds = round(self.detector.seconds + self.look_stage.spent, 3)
            if self.options.expected != 1:
                self._evict()
        finally:
            if self.stager is not None:
                self.stager.close()
            if self.executor is not None:
                self.stats.executor = self.executor.name
                self.stats.ray_started = self.executor.stats().ray_started
                self.executor.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _every(found: Future) -> Future:
    """The Detections alone, of the (detections, info) that `found` will hold."""
    first = Future()

    def settle(f: Future) -> None:
        if f.exception() is not None:
            first.set_exception(f.exception())
        else:
            first.set_result(f.result()[0])

    found.add_done_callback(settle)
    return first


class EngineFeed(Feed):
    """The loop's work, as the engine admits it (`Engine.more`, `Engine.take`); `stop()`,
    asked at each take, raises to end the loop early."""

    def __init__(self, engine: Engine, stop=None):
        super().__init__(())
        self.engine, self.stop = engine, stop

    @property
    def more(self) -> bool:
        return self.engine.more()

    def take(self, n) -> list[Work]:
        if self.stop is not None:
            self.stop()
        return self.engine.take()
