"""Joining chunks into the video: packets copied in order (no second encode), the mixed
sound encoded alongside, interleaved by time, in one container."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from raypipe.media.audio import RATE
from raypipe.media.encode import CODECS
from raypipe.media.streams import MediaError, ReadCounter, open_source
from raypipe.media.video import reason

FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
_AUDIO_BLOCK = 4096  # samples per frame handed to the audio encoder (it re-blocks to its own size)


def _audio_stream(out, codec: str):
    name = CODECS[codec].audio
    stream = out.add_stream(name, rate=RATE, layout="stereo")
    if name != "pcm_s16le":
        stream.bit_rate = 192_000
    return stream


def _audio_frames(sound: np.ndarray):
    for i in range(0, sound.shape[1], _AUDIO_BLOCK):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, i: i + _AUDIO_BLOCK]), format="fltp",
                                           layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, i, Fraction(1, RATE)
        yield frame


def join(chunks: list[str], sound: np.ndarray | None, codec: str, path: str,
         counter: ReadCounter | None = None) -> int:
    """Writes the video to the local file `path`; returns its frame count. Chunks are
    storage URIs read as streams; they must share one encoder's settings."""
    fmt = FORMATS[os.path.splitext(path)[1].lower()]
    options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    frames = 0
    try:
        with av.open(path, "w", format=fmt, options=options) as out:
            video = audio = None
            pending = _audio_frames(sound) if sound is not None else iter(())
            next_audio = next(pending, None)
            offset = Fraction(0)  # seconds: where the next chunk starts
            for uri in chunks:
                with open_source(uri, counter) as f, av.open(f, "r") as chunk:
                    src = chunk.streams.video[0]
                    if video is None:
                        video = out.add_stream_from_template(src)
                        audio = _audio_stream(out, codec) if sound is not None else None
                    # A chunk starts where the frames before it end, counted, not summed from
                    # packet durations: those are rounded (1 ms in WebM) or missing.
                    shift = round(offset / src.time_base)
                    # The bitstream declares how many pictures decoding runs ahead (2 with
                    # x264's B-pyramid), but the encoder reaches that lag only on a chunk of 3
                    # frames or more; a shorter one decodes in step with its pictures. Every
                    # chunk is brought to the declared lag, so decode times rise across joins.
                    lag = round(src.codec_context.reorder_depth / (src.average_rate * src.time_base))
                    dts_shift = None
                    count = 0
                    for packet in chunk.demux(src):
                        if packet.size == 0:
                            continue
                        if dts_shift is None:  # the chunk's key frame, its first picture
                            dts_shift = shift + packet.pts - packet.dts - lag
                        packet.pts += shift
                        packet.dts += dts_shift
                        t = packet.pts * src.time_base
                        # Sound up to this picture's time first, so the two stay interleaved.
                        while next_audio is not None and Fraction(next_audio.pts, RATE) <= t:
                            for p in audio.encode(next_audio):
                                out.mux(p)
                            next_audio = next(pending, None)
                        packet.stream = video
                        out.mux(packet)
                        count += 1
                    frames += count
                    offset += count / src.average_rate
            while next_audio is not None:
                for p in audio.encode(next_audio):
                    out.mux(p)
                next_audio = next(pending, None)
            if audio is not None:
                for p in audio.encode(None):
                    out.mux(p)
    except av.FFmpegError as e:
        raise MediaError(f"joining the chunks into {path} failed: {reason(e)}") from None
    return frames
