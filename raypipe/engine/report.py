"""report.json, typed and built in one place. Every field is true in the mode that wrote it:
what only Ray can measure is null where Ray did not run, and where each task ran is what the
executor that ran it recorded."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass

from raypipe.detection.detections import Detections
from raypipe.detection.info import DetectionInfo
from raypipe.engine.executor import ExecutorStats
from raypipe.engine.task import SegmentManifest
from raypipe.plan.timeline import Plan


@dataclass(frozen=True)
class TaskRun:
    """One chunk of the video: a segment's frames [start, start + frames)."""

    index: int
    start: int
    frames: int
    reused: bool  # from the chunk cache: not rendered by this render
    executor: str  # "driver" or "ray", as the executor that ran it recorded; "" if reused
    node_id: str
    node_ip: str
    pid: int
    seconds: float
    started: float
    peak_rss_mb: float
    bytes_read: int

    @classmethod
    def of(cls, m: SegmentManifest) -> TaskRun:
        return cls(m.index, m.start, m.frames, m.reused, m.executor, m.node_id, m.node_ip, m.pid, m.seconds,
                   round(m.started, 3), m.peak_rss_mb, m.bytes_read)


@dataclass(frozen=True)
class Report:
    job: str
    output: str
    frames: int
    fps: float
    fps_exact: str
    width: int
    height: int
    duration_s: float
    segments: int
    detector: str
    detector_fallback: str | None
    detector_device: str | None  # None: every detection came from the cache
    clip_loads: int
    executor: str  # what rendered the tasks: "threads", "ray" or "threads+ray" (the head start)
    ray_started: bool
    segment_workers: int | None  # Ray worker processes that rendered tasks; None without Ray
    segment_workers_with_torch: int | None
    masks_zero_copy: bool | None  # every Ray task mapped the masks from shared memory; None without one
    frames_rendered_by_the_driver: int
    driver_imported_torch: bool
    detections: list
    object_store_bytes: int | None  # what this render put into Ray's object store; None without Ray
    detections_held_by_nodes: list[str] | None
    detect_s: float
    # Seconds from the render's start to its first task's (None when no task ran): a task on
    # the driver's threads starts once its own sources are detected, not all of them.
    first_task_s: float | None
    # Bytes each reader took from storage: sources are streamed, never fetched whole. The
    # planner's probes and validation's checks too; report.html's sheet reads after it.
    bytes_read: dict
    stages: dict
    run: str
    run_id: str
    tasks: int  # tasks this render ran (cached chunks are not tasks)
    chunks: int  # chunks the video was joined from, cached ones included
    max_frames_per_task: int  # the most frames a task was planned with: the setting, or what the CPUs chose
    retries: list
    muxer_restarts: int
    cache: dict
    segment_runs: list[TaskRun]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode()


def build(plan: Plan, result: dict, info: DetectionInfo, detections: Detections, manifests: list[SegmentManifest],
          stages: dict, executor: str, stats: ExecutorStats, *, run: str, run_id: str, max_frames_per_task: int,
          retries: list, cache: dict, reads: dict, started: float) -> Report:
    """`started`: the render's start, in epoch seconds (as the tasks' `started`)."""
    manifests = sorted(manifests, key=lambda m: m.start)
    rendered = [m for m in manifests if not m.reused]
    on_ray = [m for m in manifests if m.executor == "ray"]
    ray_ran = stats.ray_started
    enc = plan.encode
    return Report(
        job=plan.name, output=result["output"], frames=result["frames"], fps=float(enc.fps),
        fps_exact=f"{enc.fps.numerator}/{enc.fps.denominator}", width=enc.width, height=enc.height,
        duration_s=round(plan.duration, 6), segments=len(plan.segments),
        detector=info.detector, detector_fallback=info.fallback_reason, detector_device=info.device,
        clip_loads=info.clip_loads, executor=executor, ray_started=ray_ran,
        segment_workers=len({(m.node_id, m.pid) for m in on_ray}) if ray_ran else None,
        segment_workers_with_torch=len({(m.node_id, m.pid) for m in on_ray if m.torch_imported}) if ray_ran else None,
        masks_zero_copy=all(m.masks_in_shared_memory for m in on_ray) if on_ray else None,
        frames_rendered_by_the_driver=sum(m.frames for m in manifests if m.executor == "driver"),
        driver_imported_torch="torch" in sys.modules, detections=detections.summary(),
        object_store_bytes=stats.object_store_bytes, detections_held_by_nodes=stats.detections_held_by,
        detect_s=info.seconds,
        first_task_s=round(min(m.started for m in rendered) - started, 3) if rendered else None,
        bytes_read={**{name: counter.bytes for name, counter in reads.items()}, "detector": info.bytes_read,
                    "segments": sum(m.bytes_read for m in manifests), "mux": result["bytes_read"]},
        stages=stages, run=run, run_id=run_id, tasks=len(rendered), chunks=len(manifests),
        max_frames_per_task=max_frames_per_task, retries=retries, muxer_restarts=stats.muxer_restarts, cache=cache,
        segment_runs=[TaskRun.of(m) for m in manifests],
    )


def run_id_of(run_dir: str) -> str:
    return os.path.basename(os.path.normpath(run_dir))
