"""ffmpeg at the edges: encode a chunk from raw frames, join chunks with the soundtrack,
decode and probe. The binary is the one imageio-ffmpeg ships, so no system ffmpeg is needed.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile

import imageio_ffmpeg
import numpy as np

from raypipe import RaypipeError
from raypipe.timeline import CODECS, AudioSpec, EncodeSpec

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
_QUIET = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
# RGB -> BT.709 limited-range YUV, and say so in the stream, so players convert back right.
_COLOR = ["-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709",
          "-color_primaries", "bt709", "-color_trc", "bt709"]


class FFmpegError(RaypipeError, RuntimeError):
    pass


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FFmpegError(f"ffmpeg failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stderr


class ChunkEncoder:
    """Pipes RGB frames into one ffmpeg process that writes one chunk file.

    Every chunk of a render uses the same settings and starts with an IDR frame, so the
    muxer joins them by stream copy: no second encode, no quality loss at the joins.
    """

    def __init__(self, path: str, enc: EncodeSpec):
        self.shape = (enc.height, enc.width, 3)
        self.frames = 0
        self._log = tempfile.TemporaryFile()
        cmd = _QUIET + [
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{enc.width}x{enc.height}",
            "-r", str(enc.fps), "-i", "-", "-an",
            "-c:v", CODECS[enc.codec], "-preset", enc.preset, "-crf", str(enc.crf),
            "-pix_fmt", "yuv420p", "-threads", str(enc.threads), *_COLOR, path,
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._log)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not match {self.shape} uint8")
        self._proc.stdin.write(np.ascontiguousarray(frame).data)
        self.frames += 1

    def close(self) -> None:
        self._proc.stdin.close()
        rc = self._proc.wait()
        self._log.seek(0)
        err = self._log.read().decode(errors="replace")
        self._log.close()
        if rc != 0:
            raise FFmpegError(f"encoder failed ({rc}): {err.strip()[-2000:]}")

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self._log.close()


def audio_filter(audio: AudioSpec, duration: float) -> str:
    chain = [f"volume={audio.volume:g}"]
    if audio.fade_in > 0:
        chain.append(f"afade=t=in:st=0:d={audio.fade_in:g}")
    if audio.fade_out > 0:
        chain.append(f"afade=t=out:st={max(duration - audio.fade_out, 0):.6f}:d={audio.fade_out:g}")
    return ",".join(chain)


def mux(chunks: list[str], audio: AudioSpec, duration: float, local_audio: str | None, out: str) -> None:
    """Join chunks by stream copy and add the soundtrack, looped or trimmed to `duration`."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as lst:
        for c in chunks:
            lst.write("file '{}'\n".format(c.replace("'", "'\\''")))
    cmd = _QUIET + ["-f", "concat", "-safe", "0", "-i", lst.name]
    if local_audio:
        cmd += ["-stream_loop", "-1", "-i", local_audio, "-map", "0:v:0", "-map", "1:a:0",
                "-af", audio_filter(audio, duration), "-c:a", "aac", "-b:a", "192k", "-ar", "48000"]
    cmd += ["-c:v", "copy", "-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", out]
    try:
        _run(cmd)
    finally:
        os.unlink(lst.name)


def count_frames(path: str) -> int:
    """Frames in the first video stream, counted by demuxing every packet."""
    err = _run([FFMPEG, "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0", "-c", "copy", "-f", "null", "-"])
    found = re.findall(r"frame=\s*(\d+)", err)
    if not found:
        raise FFmpegError(f"no video frames counted in {path}")
    return int(found[-1])


def probe(path: str) -> dict:
    """Size, fps, duration and stream presence, as MoviePy's ffmpeg parser reads them."""
    from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

    info = ffmpeg_parse_infos(path, decode_file=False)
    return {
        "width": info["video_size"][0],
        "height": info["video_size"][1],
        "fps": info["video_fps"],
        "duration": info["duration"],
        "audio": bool(info.get("audio_found")),
        "frames": count_frames(path),
    }


def decode_frames(path: str, width: int, height: int) -> np.ndarray:
    """Every decoded frame as RGB, no frame dropped or duplicated to fit a rate."""
    proc = subprocess.run(
        _QUIET[:-1] + ["-i", path, "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24",
                       "-fps_mode", "passthrough", "-"],
        capture_output=True,
    )
    if proc.returncode != 0:
        raise FFmpegError(proc.stderr.decode(errors="replace")[-2000:])
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, height, width, 3)
