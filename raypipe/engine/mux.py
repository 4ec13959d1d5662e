"""The muxer: collects segment manifests as their tasks finish, joins the chunks in timeline
order with the mixed sound, and publishes the video atomically. On Ray, an engine's muxers
share one actor (`Muxers`); in a single-process render, it is a plain object."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from raypipe.engine.task import SegmentManifest
from raypipe.errors import MuxError
from raypipe.media import ReadCounter
from raypipe.media.audio import AudioSpec, mix
from raypipe.media.join import join
from raypipe.media.video import reason
from raypipe.storage import publishing


class Muxer:
    def __init__(self, total_frames: int, duration: float, audio: AudioSpec, output: str, codec: str):
        self.total_frames, self.duration = total_frames, duration
        self.audio, self.output, self.codec = audio, output, codec
        self.manifests: dict[int, SegmentManifest] = {}  # by first frame
        # The sound depends on no chunk: it is mixed while the segments render.
        self._counter = ReadCounter()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._sound = self._pool.submit(mix, audio, duration, self._counter)

    def add(self, manifest: SegmentManifest) -> int:
        self.manifests[manifest.start] = manifest
        return len(self.manifests)

    def abandon(self) -> None:
        self.manifests.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def finish(self) -> dict:
        t0 = time.perf_counter()
        ordered, at = [], 0
        while at < self.total_frames:  # the chunks must tile the timeline, in order, exactly
            if at not in self.manifests:
                raise MuxError(f"no chunk holds frame {at} at mux time")
            ordered.append(self.manifests[at])
            at += ordered[-1].frames
        if at != self.total_frames or len(ordered) != len(self.manifests):
            raise MuxError(f"chunks hold frames up to {at} in {len(self.manifests)} pieces; the timeline has "
                           f"{self.total_frames}")
        counter = self._counter
        sound = self._sound.result()
        self._pool.shutdown()  # its one thread, done with
        try:
            with publishing(self.output, os.path.splitext(self.output)[1].lower()) as out:
                frames = join([m.chunk for m in ordered], sound, self.codec, out, counter)
                if frames != self.total_frames:
                    raise MuxError(f"muxed video has {frames} frames, the timeline {self.total_frames}")
        except OSError as e:
            raise MuxError(f"cannot write {self.output}: {reason(e)}") from None
        return {"output": self.output, "frames": frames, "seconds": round(time.perf_counter() - t0, 3),
                "bytes_read": counter.bytes}


class Muxers:
    """The muxers of one engine's videos, in one actor on the driver's node: it starts once, not
    once a video (a Ray worker's start and raypipe's imports cost about 0.7 CPU-seconds, which
    a service's or a batch's every video paid). Each video's muxer is keyed by its link's key."""

    def __init__(self):
        self._open: dict[str, Muxer] = {}

    def open(self, key: str, total_frames: int, duration: float, audio: AudioSpec, output: str, codec: str) -> None:
        self._open[key] = Muxer(total_frames, duration, audio, output, codec)

    def add(self, key: str, manifest: SegmentManifest) -> int:
        return self._open[key].add(manifest)

    def finish(self, key: str) -> dict:
        try:
            return self._open[key].finish()
        finally:
            self.abandon(key)

    def abandon(self, key: str) -> None:
        muxer = self._open.pop(key, None)
        if muxer is not None:
            muxer.abandon()
