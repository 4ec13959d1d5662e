"""Encoding a chunk in-process (PyAV), with the codec table every chunk of a render shares.

Every chunk of a render uses the same settings and starts with a key frame, so chunks join
by stream copy. The encoder runs on its own thread, fed through a short queue: libx264
releases the GIL, so a task renders frame k+1 while frame k encodes, as the previous
design's ffmpeg process did, but without piping every pixel through the kernel.
"""
from __future__ import annotations

import functools
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from raypipe.media.streams import MediaError
from raypipe.media.video import reason


@dataclass(frozen=True)
class Codec:
    encoder: str
    containers: tuple[str, ...]  # output file extensions it can go in
    audio: str  # the sound's codec in those containers
    pix_fmt: str
    max_side: int  # the largest width or height the encoder accepts


CODECS = {
    "h264": Codec("libx264", (".mp4", ".m4v", ".mov", ".mkv"), "aac", "yuv420p", 16384),
    "h265": Codec("libx265", (".mp4", ".m4v", ".mov", ".mkv"), "aac", "yuv420p", 16384),
    "vp9": Codec("libvpx-vp9", (".webm", ".mkv"), "libopus", "yuv420p", 16384),
    # ProRes 422 HQ, 10-bit: an editing intermediate, so quality is fixed by the profile.
    "prores": Codec("prores_ks", (".mov",), "pcm_s16le", "yuv422p10le", 16384),
}
_BT709 = 1  # the value of AVCOL_PRI_BT709, AVCOL_TRC_BT709 and AVCOL_SPC_BT709
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class EncodeSpec:
    width: int
    height: int
    fps: Fraction
    codec: str
    crf: int
    preset: str
    threads: int

    @property
    def chunk_extension(self) -> str:
        return CODECS[self.codec].containers[0]


@functools.lru_cache(maxsize=1)
def _x264_cpu() -> dict[str, str]:
    """libx264's AVX-512 code gives run-to-run different output for the same frames (seen
    with PyAV 18's x264 core 165 on AMD EPYC: 2 of 12 encodes differed); stopping at AVX2
    makes every render of a job bit-identical, for ~2 ms per 1080p frame (14.5 against 12.2)."""
    try:
        with open("/proc/cpuinfo") as f:
            avx512 = "avx512" in f.read()
    except OSError:
        avx512 = False
    return {"x264-params": "asm=avx2"} if avx512 else {}


def _options(enc: EncodeSpec) -> dict[str, str]:
    if enc.codec == "h264":
        return {"preset": enc.preset, "crf": str(enc.crf), "threads": str(enc.threads), **_x264_cpu()}
    if enc.codec == "h265":
        # pools bounds x265's own thread pool, which ignores the generic thread count.
        return {"preset": enc.preset, "crf": str(enc.crf), "x265-params": f"log-level=error:pools={enc.threads}"}
    if enc.codec == "vp9":
        cpu_used = 8 - X264_PRESETS.index(enc.preset)  # ultrafast -> 8 ... veryslow -> 0
        return {"crf": str(enc.crf), "b": "0", "deadline": "good", "cpu-used": str(cpu_used), "row-mt": "1",
                "threads": str(enc.threads)}
    return {"profile": "3", "vendor": "apl0", "threads": str(enc.threads)}


def add_video_stream(container, enc: EncodeSpec):
    codec = CODECS[enc.codec]
    stream = container.add_stream(codec.encoder, rate=enc.fps, options=_options(enc))
    stream.width, stream.height, stream.pix_fmt = enc.width, enc.height, codec.pix_fmt
    if enc.codec == "h265":
        stream.codec_tag = "hvc1"  # the tag Apple's players require
    # RGB goes to BT.709 limited-range YUV, and the stream says so, so players convert back right.
    ctx = stream.codec_context
    ctx.color_primaries = ctx.color_trc = ctx.colorspace = _BT709
    ctx.color_range = ColorRange.MPEG
    return stream


class ChunkEncoder:
    """RGB frames in, one chunk file out; `close` raises MediaError with FFmpeg's reason."""

    def __init__(self, path: str, enc: EncodeSpec):
        self.path, self.shape, self.frames = path, (enc.height, enc.width, 3), 0
        self._pix_fmt = CODECS[enc.codec].pix_fmt
        try:
            self._out = av.open(path, "w")
            self._stream = add_video_stream(self._out, enc)
        except av.FFmpegError as e:
            raise MediaError(f"cannot encode {enc.codec} to {path}: {reason(e)}") from None
        self._queue: queue.Queue = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="chunk-encoder", daemon=True)
        self._thread.start()

    def _encode(self, frame: av.VideoFrame | None) -> None:
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def _run(self) -> None:
        convert = VideoReformatter()  # one for the chunk: a fresh one per frame costs ~3 ms at 1080p
        k = 0
        while (rgb := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining, so a writer never blocks on a dead encoder
            try:
                # The frame wraps the array's memory (no copy); `rgb` keeps it alive meanwhile.
                frame = convert.reformat(av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(rgb), format="rgb24"),
                                         format=self._pix_fmt, dst_colorspace=Colorspace.ITU709,
                                         dst_color_range=ColorRange.MPEG)
                # Tagged exactly as the stream is, so libx264 never reconfigures mid-chunk.
                frame.color_primaries = frame.color_trc = _BT709
                frame.pts = k
                k += 1
                self._encode(frame)
            except BaseException as e:  # reported by the writer's next call
                self._error = e
        if self._error is None:
            try:
                self._encode(None)
            except BaseException as e:
                self._error = e

    def _raise(self) -> None:
        e = self._error
        cause = e if not isinstance(e, av.FFmpegError) else None
        raise MediaError(f"encoding {self.path} failed: {reason(e)}") from cause

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not match {self.shape} uint8")
        if self._error is not None:
            self.abort()
            self._raise()
        self._queue.put(frame)
        self.frames += 1

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            self._out.close()
        except av.FFmpegError as e:
            self._error = self._error or e
        if self._error is not None:
            self._raise()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()
        try:
            self._out.close()
        except av.FFmpegError:
            pass
