"""The muxer: collects segment chunks as their tasks finish, joins them in timeline order
with the soundtrack, and publishes the video atomically. Runs as a Ray actor in a render,
as a plain object in a single-process one."""
from __future__ import annotations

import os
import shutil
import tempfile
import time

from raypipe import RaypipeError, ffmpeg
from raypipe.segment import SegmentManifest
from raypipe.sources import local_path, release_fetched
from raypipe.storage import Storage, fetch_file, publish_file
from raypipe.timeline import AudioSpec


class MuxError(RaypipeError, RuntimeError):
    pass


class Muxer:
    def __init__(self, store: Storage, segments: int, total_frames: int, duration: float, audio: AudioSpec,
                 output: str, codec: str):
        self.store = store
        self.segments, self.total_frames, self.duration = segments, total_frames, duration
        self.audio, self.output, self.codec = audio, output, codec
        self.tmp = tempfile.mkdtemp(prefix="raypipe-mux-")
        self.chunks: dict[int, tuple[str, SegmentManifest]] = {}
        self.local_audio = None
        if audio.path:
            # Fetched once, while the segments render; mixed once, so no seam at a boundary.
            self.local_audio = os.path.join(self.tmp, "audio" + os.path.splitext(audio.path)[1])
            fetch_file(audio.path, self.local_audio)

    def add(self, manifest: SegmentManifest) -> int:
        local = os.path.join(self.tmp, os.path.basename(manifest.chunk))
        self.store.fetch(manifest.chunk, local)
        self.chunks[manifest.index] = (local, manifest)
        return len(self.chunks)

    def finish(self) -> dict:
        t0 = time.perf_counter()
        try:
            missing = sorted(set(range(self.segments)) - set(self.chunks))
            if missing:
                raise MuxError(f"segments missing at mux time: {missing}")
            ordered = [self.chunks[i] for i in range(self.segments)]
            planned = sum(m.frames for _, m in ordered)
            if planned != self.total_frames:
                raise MuxError(f"segments hold {planned} frames, the timeline {self.total_frames}")
            out = os.path.join(self.tmp, "final" + os.path.splitext(self.output)[1].lower())
            clips = [local_path(c.source) for c in self.audio.clips]
            ffmpeg.mux([p for p, _ in ordered], self.audio, self.duration, self.local_audio, clips, self.codec, out)
            frames = ffmpeg.count_frames(out)
            if frames != self.total_frames:
                raise MuxError(f"muxed video has {frames} frames, the timeline {self.total_frames}")
            publish_file(out, self.output)
            return {"output": self.output, "frames": frames, "seconds": round(time.perf_counter() - t0, 3)}
        finally:
            self.close()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        release_fetched()
