"""The engine's two stages before rendering, each a thread that owns its state:

- `LookStage` takes the submitted videos in order and makes each ready for the detector
  without it: planned (the checks that read its sources), its cache keys looked up once and,
  where several videos are coming, its stills that the cache does not hold decoded and their
  faces found on every core, while the model loads and detects the videos before.
- `DetectStage` detects each video's distinct sources once by content (a source that many
  videos show is detected for the first), with the engine's one detector: in this process
  (`LocalDetector`) or in Ray actors (`ActorDetector`, on GPU or cluster nodes).

They pass typed messages through bounded queues, so the videos held ahead stay few.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from raypipe.detection import detector
from raypipe.detection.cache import DetectionCache, source_id
from raypipe.detection.detections import Detections
from raypipe.detection.info import DetectionInfo
from raypipe.engine.cache import Reuse
from raypipe.engine.staging import Stager
from raypipe.engine.task import check_captions
from raypipe.engine.video import VideoRun, VideoStatus
from raypipe.errors import Cancelled, CancelToken, Interrupted, RaypipeError

log = logging.getLogger("raypipe")

# Sources whose detections the engine keeps for videos that show them again (a logo in every
# row, a photo shared by a few): the most recently used, so memory stays flat however many
# videos there are; one dropped is found again in the detection cache.
KNOWN_SOURCES = 1024
WAIT_S = 0.2  # how often a blocked stage asks whether to stop


class Stopped(Exception):
    """The engine closed (or its caller stopped) while a stage waited."""


@dataclass(frozen=True)
class Looked:
    run: VideoRun
    error: BaseException | None = None


@dataclass(frozen=True)
class WarmUp:
    """A source misses the cache: the detector will be needed, so its model loads now."""


@dataclass(frozen=True)
class NoMore:
    """The submissions are sealed and every one has passed."""


class Gate:
    """The engine's stop, as the stages see it: its caller's cancel, or its close; and the
    error of a stage that died, which the engine's loop raises."""

    def __init__(self, cancel: CancelToken):
        self.cancel, self.closed = cancel, threading.Event()
        self.error: BaseException | None = None

    def thread(self, name: str, target) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except (Stopped, Interrupted):
                pass
            except BaseException as e:  # a bug: the loop ends with it rather than wait for ever
                self.error = e
        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def check(self) -> None:
        self.cancel.check()
        if self.closed.is_set():
            raise Stopped

    def put(self, out: queue.Queue, item) -> None:
        while True:
            try:
                return out.put(item, timeout=WAIT_S)
            except queue.Full:
                self.check()

    def get(self, source: queue.Queue, idle=None):
        """The next item; `idle()` is called each WAIT_S that none comes."""
        while True:
            try:
                return source.get(timeout=WAIT_S)
            except queue.Empty:
                self.check()
                if idle is not None:
                    idle()


class LocalDetector:
    """The one detector in this process: its model loads once, for the engine's life. While
    nothing renders (a service's lone request, a batch's first row), the video waits for it
    alone, so its model takes every CPU here rather than detector.num_cpus; a streamed video's
    first tasks start beside it, so it keeps num_cpus there."""

    remote = False
    actors = 0

    def __init__(self, settings, rendering=None):
        self.settings = settings  # a plain detector config (OmegaConf.to_object)
        self.rendering = rendering  # whether any video's tasks or mux are under way (None: say yes)
        self.made = detector.Made()
        self.seconds = 0.0
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    @property
    def loads(self) -> int:
        return self.made.loads.count

    def warm(self) -> None:
        t = time.perf_counter()
        try:
            self.made.get(self.settings)
        except RaypipeError:  # the first video that needs it fails with the reason, as it would have
            return
        finally:
            self.seconds += time.perf_counter() - t

    def detect(self, sources, prompts, ranges, cache, looks, moved, on_source=None) -> tuple[dict, DetectionInfo]:
        t = time.perf_counter()
        alone = on_source is None and self.rendering is not None and not self.rendering()
        threads = max(1, int(self.settings.num_cpus), self.cpus if alone else 0)
        try:
            return detector.detect_all(self.settings, sources, prompts, ranges, cache, self.made,
                                       on_source=on_source, looks=looks, threads=threads)
        finally:
            self.seconds += time.perf_counter() - t

    def close(self) -> None:
        self.made.drop()  # the model's memory goes with the last video that needs it


class ActorDetector:
    """The detector in Ray actors (a DetectorPool): no looks, they decode their own, from where
    every node reads them (staged copies of the driver's files)."""

    remote = True

    def __init__(self, pool, actors: int):
        self.pool, self.actors = pool, actors
        self.seconds = 0.0

    @property
    def loads(self) -> int:
        return self.pool.loads  # every actor's, those of calls that failed after loading too

    def warm(self) -> None:
        pass

    def detect(self, sources, prompts, ranges, cache, looks, moved, on_source=None) -> tuple[dict, DetectionInfo]:
        there = {u: moved.get(u, u) for u in sources}
        if cache is not None:
            cache = DetectionCache(cache.root, {there.get(u, u): k for u, k in cache.keys.items()})
        t = time.perf_counter()
        try:
            found, info = self.pool.detect(tuple(there.values()), prompts,
                                           {there[u]: r for u, r in ranges.items()}, cache)
        finally:
            self.seconds += time.perf_counter() - t
        return {u: found[there[u]] for u in sources}, info

    def close(self) -> None:
        self.pool.close()


def identities(run: VideoRun) -> dict[str, tuple]:
    """Each source's detection identity in this video: the source's content, the prompts it is
    detected for and, for a clip, the spans of it that the video shows (another video's spans
    of the same clip are other keyframes)."""
    spans = run.plan.video_ranges()
    return {u: (source_id(u), tuple(run.plan.prompts), spans.get(u)) for u in run.plan.sources}


class LookStage:
    """Plans each submitted video, looks up its cache keys and (with `ahead`) makes its
    stills' looks; `spent` sums the looks' seconds. Failures travel on as `Looked.error`."""

    def __init__(self, inbox: queue.Queue, out: queue.Queue, gate: Gate, settings, ahead: bool):
        self.inbox, self.out, self.gate = inbox, out, gate
        self.settings = settings if ahead else None  # None: no looks made here
        self.side = detector.presumed_side(settings) if ahead else 0
        self.seen: OrderedDict[str, None] = OrderedDict()  # source ids looked at (or cached), most recent last
        self.warned = not ahead
        self.spent = 0.0

    def run(self) -> None:
        # A video's stills side by side (the Haar passes let go of the GIL): where the renderers
        # wait, above all when a video is small and its photos' faces cost more than its frames.
        workers = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="look")
        try:
            while not isinstance(run := self.gate.get(self.inbox), NoMore):
                self.gate.check()
                try:
                    self.prepare(run, workers)
                except (RaypipeError, Cancelled) as e:
                    self.gate.put(self.out, Looked(run, e))
                    continue
                self.gate.put(self.out, Looked(run))
            self.gate.put(self.out, NoMore())
        finally:
            workers.shutdown()

    def prepare(self, run: VideoRun, workers: ThreadPoolExecutor) -> None:
        if run.cancel.reason is not None:
            raise run.cancel.reason
        if run.plan is None:
            with run.stages("validate"):
                run.plan = run.spec.plan()
        if run.reuse is None:
            with run.stages("cache_lookup"):
                run.reuse = Reuse.look_up(run.spec.load(), run.plan, run.store)
        run.handle._set(VideoStatus.DETECTING, total=run.plan.total_frames)
        stills = []
        for uri in run.plan.sources if self.settings is not None else ():
            sid = source_id(uri)
            if sid in self.seen:
                continue
            if run.reuse.detections is None or run.reuse.detections.get(uri) is None:
                if not self.warned:
                    self.gate.put(self.out, WarmUp())
                    self.warned = True
                if uri not in run.plan.video_ranges():  # a clip's keyframes: decoded as it is detected
                    stills.append(uri)
            self.seen[sid] = None
            if len(self.seen) > KNOWN_SOURCES:
                self.seen.popitem(last=False)
        for uri, (look, seconds) in zip(stills, workers.map(self._look, stills)):
            run.looks[uri] = look
            self.spent += seconds

    def _look(self, uri: str):
        t = time.perf_counter()
        return detector.look(self.settings, uri, self.side), time.perf_counter() - t


class DetectStage:
    """The looked videos in order, each distinct source once by content. With `shared_passes`
    (the detector's actors: a GPU's forward pass of 16 images costs little more than one of 1)
    several videos' sources share the model's passes, up to detector.batch_size images each,
    but only while rendering has videos to go on with; on a CPU an image costs the same in a
    pass of 1 as of 16, so each video is detected on its own. A video with a `stream` hears
    each of its sources as it is in (its tasks start on them). `stager` copies a video's local
    files to where Ray's nodes read them, before its detection (the actors read them too).
    Each video's `detected` future is settled, and the video goes on to `out`."""

    def __init__(self, inbox: queue.Queue, out: queue.Queue, gate: Gate, detector_, stager: Stager | None,
                 shared_passes: bool):
        self.inbox, self.out, self.gate, self.detector = inbox, out, gate, detector_
        self.stager, self.shared_passes = stager, shared_passes
        self.known: OrderedDict[tuple, object] = OrderedDict()  # identity -> compacted detection
        self.group: list[VideoRun] = []
        self.ids: dict[str, dict] = {}  # the group's videos' identities, found once (on S3 a request per source)
        self.kind: str | None = None  # what detected, as the last call said
        self.warned = False

    def run(self) -> None:
        try:
            while not isinstance(item := self.gate.get(self.inbox, idle=self.idle), NoMore):
                self.gate.check()
                if isinstance(item, WarmUp):
                    self.detector.warm()
                    continue
                self.take(item)
            if self.group:
                self.flush()
            self.gate.put(self.out, NoMore())
        finally:
            self.detector.close()

    def take(self, item: Looked) -> None:
        run = item.run
        if item.error is None:
            try:
                self.ids[run.id] = identities(run)
            except RaypipeError as e:  # a source gone since the video was looked at
                item = Looked(run, e)
        if item.error is not None:
            self.settle(run, error=item.error)
            return
        if self.group and self.group[0].plan.prompts != run.plan.prompts:
            self.flush()  # a pass has one set of prompts
        self.group.append(run)
        fresh = {k for ks in self.ids.values() for k in ks.values()} - self.known.keys()
        if not self.shared_passes or self.out.empty() or len(fresh) >= run.cfg.detector.batch_size:
            self.flush()

    def idle(self) -> None:
        """No video came: a group kept for a shared pass goes once rendering has nothing to go
        on with, rather than wait for a video that may never come (a service's next request)."""
        if self.group and self.out.empty():
            self.flush()

    def settle(self, run: VideoRun, found: tuple | None = None, error: BaseException | None = None) -> None:
        if error is not None:
            if run.stream is not None:
                run.stream.fail(error)
            run.detected.set_exception(error)
        else:
            run.detected.set_result(found)
        self.gate.put(self.out, run)

    def flush(self) -> None:
        group, self.group = self.group, []
        staged = []
        for run in group:  # before detection: actors on other nodes read the copies
            try:
                if self.stager is not None and not run.repointed:
                    with run.stages("stage_inputs"):
                        run.moved = self.stager.stage(run.plan)
                staged.append(run)
            except RaypipeError as e:
                self.settle(run, error=e)
        if staged:
            self.detect_group(staged)
        self.ids.clear()
        while len(self.known) > KNOWN_SOURCES:
            self.known.popitem(last=False)

    def detect_group(self, group: list[VideoRun]) -> None:
        """One call per round names each source once (a clip that videos show over other spans
        waits for the next); a failure is found again video by video, so the others go on."""
        t0 = time.perf_counter()
        try:
            info = self._calls(group)
        except RaypipeError as e:
            if len(group) == 1:
                self.settle(group[0], error=e)
                return
            for run in group:
                self.detect_group([run])
            return
        seconds = round(time.perf_counter() - t0, 3)
        for run in group:
            keys = self.ids.get(run.id) or identities(run)
            try:
                subjects = detector.expand({u: self.known[keys[u]] for u in run.plan.sources})
                detections = Detections.pack(subjects, smoothing=run.cfg.detector.track_smoothing)
                check_captions(run.plan, detections)
            except RaypipeError as e:
                self.settle(run, error=e)
                continue
            run.stages.seconds["detect"] = seconds
            self.settle(run, (detections, replace(info, seconds=seconds)))

    def _calls(self, group: list[VideoRun]) -> dict:
        first = {}  # identity -> (source, the first video that shows it)
        for run in group:
            keys = self.ids.get(run.id) or identities(run)
            self.ids[run.id] = keys
            for u in run.plan.sources:
                first.setdefault(keys[u], (u, run))
        fresh = [(i, u, run) for i, (u, run) in first.items() if i not in self.known]
        for i in first.keys() & self.known.keys():
            self.known.move_to_end(i)  # used again: kept longest
        moved = {path: uri for run in group for path, uri in run.moved.items()}
        stream = group[0].stream if len(group) == 1 else None
        infos, called = [], set()
        while fresh:
            call, later, names = [], [], set()
            for item in fresh:
                (later if item[1] in names else call).append(item)
                names.add(item[1])
            fresh = later
            if group[0].order:  # the order its tasks read them in, cheapest first
                call.sort(key=lambda item: group[0].order.index(item[1]))
            ranges = {u: i[2] for i, u, _ in call if i[2] is not None}  # a clip's spans, in its identity
            keys, root = {}, None
            for _, u, run in call:
                if (found := run.reuse.detections) is not None:
                    keys[u], root = found.keys[u], found.root
            cache = DetectionCache(root, keys) if keys else None
            looks = {u: run.looks[u] for _, u, run in call if u in run.looks}
            compacted, info = self.detector.detect(tuple(u for _, u, _ in call), tuple(group[0].plan.prompts),
                                                   ranges, cache, looks, moved,
                                                   on_source=stream.heard if stream is not None else None)
            infos.append(info)
            for i, u, _ in call:
                self.known[i] = compacted[u]
                called.add(u)
        if stream is not None:  # known from earlier videos, or the content of another of its sources: heard now
            keys = self.ids[group[0].id]
            for u in sorted(set(group[0].plan.sources) - called):
                stream.heard(u, self.known[keys[u]])
        if infos:
            self.kind = infos[-1].detector
        reason = next((i.fallback_reason for i in infos if i.fallback_reason), None)
        if reason and not self.warned:  # once an engine: a batch's every row fell back for the one reason
            log.warning("DETECTOR FELL BACK TO SALIENCY: %s", reason)
            self.warned = True
        return merged(infos, self.kind or detector.resolve_kind(group[0].cfg.detector)[0])


def merged(infos: list[DetectionInfo], kind: str) -> DetectionInfo:
    """One info for a video of several calls, one after another (or of none: every source was
    known from earlier videos, found by the `kind` of detector)."""
    if not infos:
        return DetectionInfo(detector=kind, fallback_reason=None, detections_reused=0, device=None, clip_loads=0,
                             seconds=0.0, bytes_read=0)
    return replace(DetectionInfo.merged(infos), seconds=round(sum(i.seconds for i in infos), 3))
