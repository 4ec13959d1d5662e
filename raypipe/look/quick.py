"""Quick looks before paying for a render: what the detector found on every source (a
contact sheet), single frames at chosen times, and the whole timeline small and fast."""
from __future__ import annotations

import os

import cv2
from omegaconf import DictConfig

from raypipe.detection.detections import Detections
from raypipe.detection.info import DetectionInfo
from raypipe.engine.cache import Reuse
from raypipe.engine.driver import detect, render
from raypipe.engine.report import Report
from raypipe.engine.task import segment_frames
from raypipe.errors import JobError
from raypipe.look import sheet
from raypipe.look.report_html import sheet_for, write_page
from raypipe.plan.timeline import Plan
from raypipe.plan.validate import prepare
from raypipe.storage import Storage


def _detected(cfg: DictConfig, run_dir: str) -> tuple[Plan, Detections, DetectionInfo]:
    """The plan and every source's subject, from the detection cache where it has them."""
    plan, _ = prepare(cfg, run_dir)
    return (plan, *detect(cfg.detector, plan, Reuse.look_up(cfg, plan, Storage(run_dir)).detections))


def _png(path: str, rgb) -> str:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode {path}")
    Storage(os.path.dirname(path)).write_bytes(os.path.basename(path), data.tobytes())
    return path


def detection_sheet(cfg: DictConfig, run_dir: str) -> tuple[str, DetectionInfo, Detections]:
    """`detections.png` in the run directory (see `sheet.detection_sheet`), the detector's
    info and the detections."""
    plan, detections, info = _detected(cfg, run_dir)
    image = sheet.detection_sheet(plan, detections, info.detector, cfg.detector.keyframe_rate)
    return _png(os.path.join(run_dir, "detections.png"), image), info, detections


def still_frames(cfg: DictConfig, run_dir: str, seconds: list[float] | None) -> list[str]:
    """PNGs of single frames at full size: at the given seconds, or (None) the first, middle
    and last frame of every segment. Each is the frame the render would make there."""
    plan, detections, _ = _detected(cfg, run_dir)
    fps = plan.encode.fps
    if seconds is None:
        picks = sorted({k for s in plan.segments for k in (s.start, (s.start + s.end - 1) // 2, s.end - 1)})
    else:
        for t in seconds:
            if not 0 <= t < plan.duration:
                raise JobError("--at", f"{t} s is outside the video (0 to {plan.duration:.3f} s)")
        picks = sorted({min(int(t * fps), plan.total_frames - 1) for t in seconds})
    paths = []
    for k in picks:
        seg = next(s for s in plan.segments if s.start <= k < s.end)
        frame = next(segment_frames(seg, detections, plan.encode, start=k, end=k + 1))
        paths.append(_png(os.path.join(run_dir, f"frame-{k:06d}.png"), frame))
    return paths


def preview_video(cfg: DictConfig, run_dir: str, scale: float, quiet: bool = False, cancel=None) -> Report:
    """The same timeline at `scale` of the size (even pixels), x264's ultrafast preset and a
    lower quality, into `<name>-preview.mp4` in the run directory (never job.output)."""
    if not 0 < scale <= 1:
        raise JobError("--scale", f"must be > 0 and <= 1 (got {scale})")
    small = cfg.copy()
    small.render.width = max(2, round(cfg.render.width * scale / 2) * 2)
    small.render.height = max(2, round(cfg.render.height * scale / 2) * 2)
    small.render.preset, small.render.crf = "ultrafast", 30
    if small.render.codec != "h264":
        small.render.codec = "h264"
    small.job.output = os.path.join(os.path.abspath(run_dir), f"{cfg.job.name}-preview.mp4")
    rendered = render(small, run_dir, quiet=quiet, cancel=cancel, sheet=sheet_for(small))
    write_page(small, rendered, run_dir)
    return rendered.report
