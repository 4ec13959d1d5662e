"""One task: render a range of one segment's frames, encode its chunk, store it, return a
small manifest.

Runs in Ray workers, so it imports numpy, OpenCV and PyAV only — never torch.
"""
from __future__ import annotations

import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import ray

from raypipe.detection.detections import Detections
from raypipe.errors import NEVER, CancelToken
from raypipe.frames.effects import Shot
from raypipe.frames.layers import CaptionLayer, Drawing, Layer
from raypipe.frames.transitions import TRANSITIONS
from raypipe.media import ChunkEncoder, EncodeSpec, MediaError, ReadCounter, load_image_sized, read_frames
from raypipe.media.video import reason
from raypipe.plan.timeline import Plan, SegmentPlan, ShotSpec, TaskPlan
from raypipe.storage import Storage

log = logging.getLogger("raypipe")


@dataclass(frozen=True)
class SegmentManifest:
    index: int
    chunk: str  # its URI
    start: int
    frames: int
    seconds: float
    node_id: str
    node_ip: str
    pid: int
    torch_imported: bool
    masks_in_shared_memory: bool
    peak_rss_mb: float  # the worker process, its encoder included
    bytes_read: int  # from storage, for its sources
    reused: bool = False  # found in the chunk cache, not rendered by this render
    started: float = 0.0  # wall-clock time (epoch seconds) the task began
    executor: str = ""  # what ran it, as that executor records it: "driver" or "ray" ("" if reused)

    @classmethod
    def cached(cls, *, index: int, chunk: str, start: int, frames: int) -> SegmentManifest:
        """A chunk found in the chunk cache: no process of this render ran it, so it has no
        node, time, memory or reads of its own."""
        return cls(index=index, chunk=chunk, start=start, frames=frames, seconds=0.0, node_id="", node_ip="", pid=0,
                   torch_imported=False, masks_in_shared_memory=False, peak_rss_mb=0.0, bytes_read=0, reused=True)


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


# The closest view of a shot is looked for at this many points of its progress, and a still
# is decoded with this much more than that view needs (between samples, and for resampling).
SIDE_SAMPLES = 17
SIDE_MARGIN = 1.05


class _ShotStream:
    """A shot's frames from a given global frame on: the source frame, its subject and the
    shot's renderer. A video is decoded from that frame's time only, for as many frames
    as are asked for."""

    def __init__(self, spec: ShotSpec, detections: Detections, enc: EncodeSpec, first: int, count: int,
                 counter: ReadCounter | None = None, zoom: float = 1.0):
        self.spec, self.first = spec, first
        self.track = detections.track(spec.source)
        self.shot = Shot(spec.effect, spec.params, enc.width, enc.height, spec.seconds)
        if spec.clip is None:
            subject = self.track.at(0.0)
            image, _ = load_image_sized(spec.source, counter, self._side(subject, zoom))
            if (image.shape[1], image.shape[0]) != subject.source_size:  # decoded smaller: its own pixels
                subject = subject.at_size((image.shape[1], image.shape[0]))
            self.frames = iter(lambda: (image, subject), None)
        else:
            decoded = read_frames(spec.source, spec.source_time(first), spec.clip.speed, enc.fps, count, counter)
            self.frames = ((img, self.track.at(spec.source_time(k))) for k, img in enumerate(decoded, first))

    def _side(self, subject, zoom: float) -> int:
        """The longer side a still need be decoded at: the closest view of the whole shot
        (at the extra `zoom` a transition adds) still gets a source pixel per output pixel,
        with a margin. It depends on the shot alone, so every task of it decodes alike: a
        12-megapixel photo in a 720p frame is decoded at half its size, at 1/8 for a thumbnail."""
        w, h = subject.source_size
        closest = self.shot.closest((w, h), subject.box, subject.key, zoom, SIDE_SAMPLES)
        return int(np.ceil(max(w, h) * min(1.0, SIDE_MARGIN / closest)))

    def next(self) -> Callable[[float], np.ndarray]:
        """The next frame, as a renderer of it at a given extra zoom (for transitions)."""
        image, subject = next(self.frames)
        p = self.spec.progress(self.first)
        self.first += 1
        return lambda zoom=1.0: self.shot.frame(image, subject, p, zoom)


# Frames a layer's placement looks at per segment: a face the camera moves across the frame is
# seen often enough that it cannot slip under a caption between two of them.
CAPTION_SAMPLES = 25


def screen_boxes(seg: SegmentPlan, detections: Detections, enc: EncodeSpec, start: int, end: int) -> tuple[list, list]:
    """Where the segment's shot puts the subject and the faces on screen over global frames
    [start, end), sampled; computed from the detections alone, without a frame."""
    spec, track = seg.shot, detections.track(seg.shot.source)
    shot = Shot(spec.effect, spec.params, enc.width, enc.height, spec.seconds)
    frames = range(start, end)
    picks = sorted({frames[round(i * (len(frames) - 1) / max(CAPTION_SAMPLES - 1, 1))] for i in range(CAPTION_SAMPLES)})
    subjects, faces = [], []
    for k in picks:
        t = spec.source_time(k)
        box, key = track.box_at(t), track.key_at(t)
        subjects.append(shot.screen_box(track.size, box, spec.progress(k), key=key))
        if key is not None:
            faces.append(shot.screen_box(track.size, box, spec.progress(k), region=key, key=key))
    return subjects, faces


def place_layer(layer: Layer, seg: SegmentPlan, detections: Detections, enc: EncodeSpec,
                boxes: tuple[list, list] | None = None) -> tuple[int, tuple[int, int]]:
    """The bitmap a layer is drawn with over the segment, and its origin, alike in every task
    of it; `boxes`: the segment's screen_boxes over the layer's frames, where already known."""
    if boxes is None:
        boxes = screen_boxes(seg, detections, enc, max(layer.start, seg.start), min(layer.end, seg.end)) \
            if layer.placed_by_subject else ([], [])
    return layer.place(*boxes, enc.width, enc.height, seg.index)


def check_captions(plan: Plan, detections: Detections) -> None:
    """Places every layer (captions among them) as its tasks will, and draws the bitmap each
    caption is placed with here, on the driver, so that tasks get it drawn with the plan: one
    that must keep clear of the subject and cannot stops the render here, once the detections
    are known and before any task, naming it. A layer put over a face is drawn there, with a
    warning line."""
    for seg in plan.segments:
        check_caption(seg, detections, plan.encode)


def check_caption(seg: SegmentPlan, detections: Detections, enc: EncodeSpec) -> None:
    """check_captions for one segment (`detections` need hold only its sources)."""
    for layer in seg.layers:
        boxes = screen_boxes(seg, detections, enc, max(layer.start, seg.start), min(layer.end, seg.end))
        variant, at = place_layer(layer, seg, detections, enc, boxes if layer.placed_by_subject else ([], []))
        layer.kind.predraw(variant)
        covering = layer.faces.place(seg.index, layer.covers(variant, at, boxes[1]), layer.segments)
        if covering:
            clear = "position: auto" if isinstance(layer.kind, CaptionLayer) else "position: auto or avoid: subject"
            log.warning("%s: at position %s it covers a face in segment%s %s; %s keeps it clear", layer.where,
                        layer.position, "s" * (len(covering) > 1), ", ".join(map(str, covering)), clear)


def segment_frames(seg: SegmentPlan, detections: Detections, enc: EncodeSpec, counter: ReadCounter | None = None,
                   start: int | None = None, end: int | None = None) -> Iterator[np.ndarray]:
    """The segment's frames in order, global frames [start, end) (default: all of it), its
    layers drawn over them. Any range gives the same pixels as the whole segment does there:
    every frame is a function of its global index alone."""
    start = seg.start if start is None else start
    end = seg.end if end is None else end
    tr = seg.transition
    zoom = getattr(tr.params, "zoom", 1.0) if tr is not None else 1.0  # how close a transition flies in
    main = _ShotStream(seg.shot, detections, enc, start, end - start, counter, zoom)
    into = None
    if tr is not None and end > tr.start:
        first = max(tr.start, start)
        into = _ShotStream(tr.into, detections, enc, first, end - first, counter, zoom)
    blend = TRANSITIONS[tr.kind].blend if tr else None
    # Each layer on in this range, its bitmap drawn or read once for the task (a video's frames decoded once).
    drawings = [Drawing(layer, *place_layer(layer, seg, detections, enc), enc.width, enc.height, range(start, end),
                        counter) for layer in seg.layers if layer.start < end and start < layer.end]
    for k in range(start, end):
        a = main.next()
        frame = blend(a, into.next(), tr.alpha(k), tr.params) if tr and k >= tr.start else a()
        on = [d for d in drawings if d.layer.on(k)]
        if on:
            frame = frame.copy()  # drawn into: an effect may hand out a frame it keeps
            for drawing in on:
                drawing.paint(frame, k)
        yield frame


def lower_priority(nice: int) -> None:
    """This thread at niceness `nice` at least, and so the threads and processes it starts from
    now on (encoders, ffmpeg, torch's pool). Linux keeps a niceness per thread: a service's
    renders and detector then yield the CPU to the threads that answer its HTTP requests, in the
    same process or not. Raising it needs no privilege; lowering it would, and is never asked."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    if os.getpriority(os.PRIO_PROCESS, thread) < nice:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, nice))


def render_task(task: TaskPlan, detections: Detections, enc: EncodeSpec, store: Storage, name: str,
                report: Callable[[int], None] | None = None, cancel: CancelToken = NEVER,
                nice: int = 0) -> SegmentManifest:
    """Renders the task's frames into the chunk `name` of `store` (the chunk cache, or the run's
    own storage); `report(frames)` hears how far it has got; `cancel` stops it at a frame; it
    runs at niceness `nice` at least (a Ray worker's stays so: its next tasks are the same kind)."""
    lower_priority(nice)
    t0, started = time.perf_counter(), time.time()
    # Ray sets OMP_NUM_THREADS to the task's CPUs; OpenCV keeps its own pool and must be told.
    cv2.setNumThreads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    counter = ReadCounter()
    ext = enc.chunk_extension
    try:
        # Encoded where it is stored (a local run directory) or uploaded once (S3); a retry
        # writes the same name, atomically.
        with store.writing(name, ext) as chunk:
            encoder = ChunkEncoder(chunk, enc)
            try:
                for frame in segment_frames(task.segment, detections, enc, counter, task.start, task.end):
                    cancel.check()
                    encoder.write(frame)
                    if report is not None:
                        report(encoder.frames)
            except BaseException:
                encoder.abort()
                raise
            encoder.close()
            if encoder.frames != task.frames:
                raise RuntimeError(f"task {name} rendered {encoder.frames} frames, planned {task.frames}")
    except OSError as e:
        raise MediaError(f"cannot store {name} in {store.root}: {reason(e)}") from None
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    node_ip = ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1"
    return SegmentManifest(
        index=task.segment.index, chunk=store.uri(name), start=task.start, frames=task.frames,
        seconds=round(time.perf_counter() - t0, 3), node_id=node, node_ip=node_ip, pid=os.getpid(),
        torch_imported="torch" in sys.modules,
        masks_in_shared_memory=in_shared_memory(detections.masks),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        bytes_read=counter.bytes, started=started,
    )
