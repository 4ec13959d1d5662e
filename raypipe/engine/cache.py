"""The chunk cache: each chunk of frames, keyed by everything that decides its pixels and
bits (see raypipe.detection.cache for how keys are made), and what a render reuses of it.

A chunk's key is its segment's, taken relative to the segment's first frame (moving a
segment along the timeline keeps its chunks), and a chunk's file is named by its frame range
inside the segment. Cached chunks serve a render whatever task ranges made them, as every
frame is a function of its global index alone.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, replace

from omegaconf import DictConfig

from raypipe.config import WEIGHTS, cache_root
from raypipe.detection import detector
from raypipe.detection.cache import DetectionCache, code_version, detection_keys, digest, source_id
from raypipe.detection.info import DetectionInfo
from raypipe.engine.task import SegmentManifest
from raypipe.plan.cost import estimated_ms
from raypipe.plan.timeline import Plan, SegmentPlan, ShotSpec, TaskPlan
from raypipe.storage import Storage, writer_gone, writer_of

# The code that decides a chunk's pixels and bits: the task and every module it imports.
RENDER_CODE = ("raypipe.engine.task",)
# Another render may be about to read an entry it has just looked up: eviction leaves entries
# used this recently alone, and temporary files of writers on other hosts this long.
GRACE_S = 600.0
STALE_TEMP_S = 86400.0


def segment_keys(plan: Plan, ids: dict[str, str], det_keys: dict[str, str], smoothing: float) -> dict[int, str]:
    """Each segment's chunk key: its shots (sources by content), effect, transition and layers
    (its caption among them; images by content) relative to its first frame, its sources'
    detections, the encoder and the renderer."""
    version = code_version(RENDER_CODE)

    def shot(s: ShotSpec, origin: int) -> ShotSpec:
        return dataclasses.replace(s, source=ids[s.source], span_start=s.span_start - origin)

    keys = {}
    for seg in plan.segments:
        tr = seg.transition
        moved = dataclasses.replace(
            seg, index=0, start=0, end=seg.frames, shot=shot(seg.shot, seg.start),
            transition=tr and dataclasses.replace(tr, start=tr.start - seg.start, into=shot(tr.into, seg.start)),
            layers=tuple(layer.keyed(seg.start, source_id) for layer in seg.layers))
        sources = [seg.shot.source] + ([tr.into.source] if tr else [])
        keys[seg.index] = digest(version, moved, plan.encode, float(smoothing), [det_keys[s] for s in sources])
    return keys




_CHUNK_NAME = re.compile(r"(\d{7})-(\d{7})(\.\w+)")


class ChunkCache:
    def __init__(self, root: str, ext: str):
        self.store, self.ext = Storage(root), ext

    @staticmethod
    def _folder(key: str) -> str:
        return f"chunks/{key[:2]}/{key}"

    def name(self, key: str, seg: SegmentPlan, start: int, end: int) -> str:
        """A chunk of global frames [start, end), named by its range inside its segment."""
        return f"{self._folder(key)}/{start - seg.start:07d}-{end - seg.start:07d}{self.ext}"

    def ranges(self, key: str) -> dict[int, list[int]]:
        """The whole chunks cached for a segment key, whatever task ranges made them: first
        frame -> the ends of the chunks that start there (relative to the segment's start).
        One listing per segment; temporary files of unfinished writes do not match."""
        found: dict[int, list[int]] = {}
        for rel, _, _ in self.store.files(self._folder(key)):
            m = _CHUNK_NAME.fullmatch(rel.rsplit("/", 1)[-1])
            if m and m.group(3) == self.ext:
                found.setdefault(int(m.group(1)), []).append(int(m.group(2)))
        return found

    def use(self, name: str) -> None:
        """Marks a chunk as just used, for eviction by last use."""
        self.store.touch(name)


def evict(root: str, max_bytes: int, keep: set[str]) -> dict:
    """Bounds the cache: removes the temporary files of writers that died (killed renders),
    then the least recently used entries until it holds at most `max_bytes`. Entries in
    `keep` (this render's) and entries used in the last GRACE_S seconds stay."""
    store, now = Storage(root), time.time()
    entries, swept = [], 0
    for rel, size, mtime in store.files():
        if rel.startswith(WEIGHTS + "/"):  # fetched models, where the cache is this machine's
            continue
        writer = writer_of(rel.rsplit("/", 1)[-1])
        if writer is not None:
            if writer_gone(*writer) or now - mtime > STALE_TEMP_S:
                store.delete(rel)
                swept += 1
            continue
        entries.append((mtime, rel, size))
    total, removed, freed = sum(e[2] for e in entries), 0, 0
    for mtime, rel, size in sorted(entries):
        if total <= max_bytes:
            break
        if rel in keep or now - mtime < GRACE_S:
            continue
        store.delete(rel)
        total, removed, freed = total - size, removed + 1, freed + size
    if (removed or swept) and "://" not in root:  # object stores have no folders to leave behind
        _remove_empty_folders(root)
    return {"bytes": total, "evicted_files": removed, "evicted_bytes": freed, "temp_files_swept": swept}


def _remove_empty_folders(root: str) -> None:
    for folder, _subfolders, files in os.walk(root, topdown=False):
        if os.path.relpath(folder, root).split(os.sep)[0] == WEIGHTS:
            continue
        if folder != root and not files:
            try:
                os.rmdir(folder)  # fails, harmlessly, if a render has just written into it
            except OSError:
                pass


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

    @classmethod
    def look_up(cls, cfg: DictConfig, plan: Plan, run_store: Storage) -> Reuse:
        root = cache_root(cfg)
        if root is None:
            return cls(None, None, None, {}, run_store, plan.encode.chunk_extension)
        ids = {uri: source_id(uri) for uri in plan.sources}
        kind, _ = detector.resolve_kind(cfg.detector)
        det_keys = detection_keys(cfg.detector, kind, plan.sources, plan.prompts, plan.video_ranges(), ids)
        keys = segment_keys(plan, ids, det_keys, cfg.detector.track_smoothing)
        return cls(root, DetectionCache(root, det_keys), ChunkCache(root, plan.encode.chunk_extension), keys,
                   run_store, plan.encode.chunk_extension)

    def pending(self, tasks: list[TaskPlan]) -> tuple[list[TaskPlan], tuple[SegmentManifest, ...]]:
        """(the tasks still to render, the cached chunks that make the rest): the frames of each
        segment that no cached chunk holds, in the planned ranges cut at the cached ones. Cached
        chunks are used whatever ranges made them (another machine's core count splits segments
        differently), as every frame is a function of its global index alone."""
        if self.chunks is None:
            return tasks, ()
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
                    found.append(SegmentManifest.cached(index=index, chunk=self.chunks.store.uri(name), start=pos,
                                                        frames=end - pos))
                    pos = end
                    continue
                gap_end = min([a for a, ends in cached.items() if a > pos and ends] + [seg.end])
                left += [TaskPlan(seg, max(t.start, pos), min(t.end, gap_end))
                         for t in planned if t.start < gap_end and t.end > pos]
                pos = gap_end
        return sorted(left, key=lambda t: -estimated_ms(t)), tuple(found)

    def moved(self, moved: dict[str, str]) -> Reuse:
        """The same, for a plan whose sources were staged elsewhere (keys follow content)."""
        if self.detections is None:
            return self
        keys = {moved.get(uri, uri): key for uri, key in self.detections.keys.items()}
        return replace(self, detections=DetectionCache(self.root, keys))

    def target(self, task: TaskPlan) -> tuple[Storage, str]:
        """Where a task's chunk goes: the cache, or the run's storage."""
        if self.chunks is None:
            return self.run_store, task.chunk(self.ext)
        return self.chunks.store, self.chunks.name(self.keys[task.segment.index], task.segment, task.start, task.end)

    def evict(self, max_gb: float, manifests) -> dict:
        if self.root is None:
            return {}
        used = {m.chunk[len(self.chunks.store.root.rstrip("/")) + 1:] for m in manifests}
        return evict(self.root, int(max_gb * 1e9), used)

    def summary(self, manifests, info: DetectionInfo, evicted: dict) -> dict:
        if self.root is None:
            return {"enabled": False}
        return {"enabled": True, "root": self.root, "detections_reused": info.detections_reused,
                "chunks_reused": sum(m.reused for m in manifests),
                "frames_reused": sum(m.frames for m in manifests if m.reused),
                "frames_rendered": sum(m.frames for m in manifests if not m.reused), **evicted}
