"""One segment: render its frames, encode its chunk, store it, return a small manifest.

Runs in Ray workers, so it imports numpy, OpenCV and ffmpeg helpers only — never torch.
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
import ray

from raypipe.detections import Detections
from raypipe.effects import TRANSITIONS, Shot
from raypipe.ffmpeg import ChunkEncoder
from raypipe.sources import load_image
from raypipe.storage import Storage
from raypipe.timeline import EncodeSpec, SegmentPlan, ShotSpec


@dataclass(frozen=True)
class SegmentManifest:
    index: int
    chunk: str  # relative to the run's storage
    start: int
    frames: int
    seconds: float
    node_id: str
    pid: int
    torch_imported: bool
    masks_in_shared_memory: bool
    peak_rss_mb: float  # the worker process
    encoder_peak_rss_mb: float  # its largest ffmpeg child


def in_shared_memory(arr: np.ndarray) -> bool:
    """True when the array's data lies in a Plasma shared-memory mapping of this process."""
    addr = arr.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                return len(parts) > 5 and "plasma" in parts[5]
    return False


def _shot(spec: ShotSpec, detections: Detections, enc: EncodeSpec) -> Shot:
    return Shot(load_image(spec.source), detections.subject(spec.source), spec.effect, spec.params,
                enc.width, enc.height)


def segment_frames(seg: SegmentPlan, detections: Detections, enc: EncodeSpec) -> Iterator[np.ndarray]:
    """The segment's frames in order, global frames [seg.start, seg.end)."""
    shot = _shot(seg.shot, detections, enc)
    tr = seg.transition
    into = _shot(tr.into, detections, enc) if tr else None
    blend = TRANSITIONS[tr.kind] if tr else None
    for k in range(seg.start, seg.end):
        frame = shot.frame(seg.shot.progress(k))
        if tr and k >= tr.start:
            frame = blend(frame, into.frame(tr.into.progress(k)), tr.alpha(k))
        yield frame


def render_segment(seg: SegmentPlan, detections: Detections, enc: EncodeSpec, store: Storage) -> SegmentManifest:
    t0 = time.perf_counter()
    # Ray sets OMP_NUM_THREADS to the task's CPUs; OpenCV keeps its own pool and must be told.
    cv2.setNumThreads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory(prefix="raypipe-seg-") as tmp:
        chunk = os.path.join(tmp, "chunk.mp4")
        encoder = ChunkEncoder(chunk, enc)
        try:
            for frame in segment_frames(seg, detections, enc):
                encoder.write(frame)
        except BaseException:
            encoder.abort()
            raise
        encoder.close()
        if encoder.frames != seg.frames:
            raise RuntimeError(f"segment {seg.index} rendered {encoder.frames} frames, planned {seg.frames}")
        # Retries overwrite the same name atomically, so a re-run segment is idempotent.
        name = f"segments/{seg.index:05d}.mp4"
        store.put_file(chunk, name)
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    return SegmentManifest(
        index=seg.index, chunk=name, start=seg.start, frames=seg.frames,
        seconds=round(time.perf_counter() - t0, 3), node_id=node, pid=os.getpid(),
        torch_imported="torch" in sys.modules,
        masks_in_shared_memory=in_shared_memory(detections.masks),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        encoder_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    )
