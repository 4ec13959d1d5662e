"""The driver: one render, as an engine given one video (raypipe.engine.engine), then its
report written beside the video; and detection alone, for the quick looks."""
from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace

from omegaconf import DictConfig, OmegaConf

from raypipe.detection import detector
from raypipe.detection.cache import DetectionCache
from raypipe.detection.detections import Detections
from raypipe.detection.info import DetectionInfo
from raypipe.engine.engine import Engine, EngineOptions
from raypipe.engine.executor import Executor
from raypipe.engine.lock import output_lock
from raypipe.engine.report import Report
from raypipe.engine.task import check_captions
from raypipe.engine.video import VideoStatus
from raypipe.errors import CancelToken
from raypipe.media import ReadCounter
from raypipe.plan.layers import told_as
from raypipe.plan.timeline import Plan
from raypipe.plan.validate import prepare
from raypipe.storage import Storage

log = logging.getLogger("raypipe")


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


class JobVideo:
    """A job's config as one of the engine's videos: checked and planned as a render checks it,
    its output locked from its plan until its end."""

    where = ""

    def __init__(self, cfg: DictConfig, run_dir: str, reads: dict | None = None, told=None):
        self.cfg, self.run_dir = cfg, run_dir
        self.told = told  # how its layers' keys are named (a variant's: after its name); None: as written
        self.reads: dict[str, ReadCounter] = {} if reads is None else reads
        self.id = cfg.job.name
        self.output: str | None = None
        self._held = ExitStack()

    def load(self) -> DictConfig:
        return self.cfg

    def plan(self) -> Plan:
        plan, self.output = prepare(self.cfg, run_location(self.cfg.storage.root, self.run_dir), self.reads)
        if self.told is not None:
            plan = told_as(plan, self.told)
        if self.cfg.job.output:  # a default output is in the run's own directory
            self._held.enter_context(output_lock(self.output))
        return plan

    def unload(self) -> None:
        self._held.close()


def render(cfg: DictConfig, run_dir: str, on_result=None, quiet: bool = False, cancel: CancelToken | None = None,
           executor: Executor | None = None, sheet=None) -> Rendered:
    """Renders the job: an engine given one video. `on_result(report)` is called once the video
    is published, before Ray shuts down (~1.3 s of waiting for its processes that nobody needs
    to sit through). Progress goes to stderr (a bar on a terminal) unless `quiet`; `cancel` stops
    the render. `sheet(plan, detections, info, counter)` makes report.html's detection sheet
    (raypipe.look) before the report is written, so that report.json counts what it reads."""
    return render_all([(cfg, run_dir, sheet, None)], on_result, quiet, cancel, executor)[0]


def render_all(jobs: list[tuple[DictConfig, str, object, object]], on_result=None, quiet: bool = False,
               cancel: CancelToken | None = None, executor: Executor | None = None) -> list[Rendered]:
    """Renders (config, run directory, sheet, told) jobs in one engine: one job's video streamed
    as its sources are detected; several (one job's variants, each `told` how to name its
    layers) side by side, each distinct source detected once for all. Raises the first failed
    video's error, once every video has ended."""
    first, first_dir, _, _ = jobs[0]
    run_root = run_location(first.storage.root, first_dir)
    videos = [JobVideo(cfg, run_dir, told=told) for cfg, run_dir, _, told in jobs]
    options = EngineOptions(run_root=run_root, run_dir=first_dir, expected=len(jobs), max_in_flight=len(jobs),
                            quiet=quiet)
    rendered = []
    with Engine(first, options, cancel, executor) as engine:
        handles = [engine.submit(video, Storage(run_location(video.cfg.storage.root, video.run_dir)))
                   for video in videos]
        engine.seal()
        try:
            engine.run()
        finally:
            for video in videos:
                video.unload()
        ends = [handle.result() for handle in handles]
        failed = next((end.error for end in ends if end.status is not VideoStatus.SUCCEEDED), None)
        if failed is not None:
            raise failed
        for video, end, (_, _, sheet, _) in zip(videos, ends, jobs):
            rendered.append(_recorded(video, end, sheet))
            if on_result is not None:
                on_result(rendered[-1].report)
    return rendered


def _recorded(video: JobVideo, end, sheet) -> Rendered:
    """A published video's report, with its detection sheet where one is asked for, written
    beside it."""
    report, plan, detections, info = end.report, end.plan, end.detections, end.info
    image = None
    if sheet is not None:
        t0 = time.perf_counter()
        counter = video.reads.setdefault("sheet", ReadCounter())
        image = sheet(plan, detections, info, counter)
        report = replace(report, stages={**report.stages, "sheet": round(time.perf_counter() - t0, 3)},
                         bytes_read={**report.bytes_read, "sheet": counter.bytes})
    write_record(lambda _: {"report.json": report.to_json()}, video.run_dir,
                 Storage(run_location(video.cfg.storage.root, video.run_dir)))
    return Rendered(report, plan, detections, info, image)


def detect(settings: DictConfig, plan: Plan, found: DetectionCache | None) -> tuple[Detections, DetectionInfo]:
    """Detection alone, in this process (the quick looks): every distinct source once, packed
    as a render's tasks read them, the captions placed against the faces found."""
    compacted, info = detector.detect_all(OmegaConf.to_object(settings), plan.sources, plan.prompts,
                                          plan.video_ranges(), found)
    if info.fallback_reason:
        log.warning("DETECTOR FELL BACK TO SALIENCY: %s", info.fallback_reason)
    detections = Detections.pack(detector.expand({u: compacted[u] for u in plan.sources}),
                                 smoothing=settings.track_smoothing)
    check_captions(plan, detections)
    return detections, info


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
