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
from raypipe.timeline import CODECS, X264_PRESETS, AudioSpec, EncodeSpec

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


def codec_args(enc: EncodeSpec) -> list[str]:
    """Encoder settings per codec; every chunk of a render gets the same ones."""
    codec = CODECS[enc.codec].encoder
    if enc.codec == "h264":
        return ["-c:v", codec, "-preset", enc.preset, "-crf", str(enc.crf), "-pix_fmt", "yuv420p",
                "-threads", str(enc.threads)]
    if enc.codec == "h265":
        # hvc1 is the tag Apple players require; pools bounds x265's own thread pool.
        return ["-c:v", codec, "-preset", enc.preset, "-crf", str(enc.crf), "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
                "-x265-params", f"log-level=error:pools={enc.threads}"]
    if enc.codec == "vp9":
        cpu_used = 8 - X264_PRESETS.index(enc.preset)  # ultrafast -> 8 ... veryslow -> 0
        return ["-c:v", codec, "-crf", str(enc.crf), "-b:v", "0", "-deadline", "good", "-cpu-used", str(cpu_used),
                "-row-mt", "1", "-pix_fmt", "yuv420p", "-threads", str(enc.threads)]
    # ProRes 422 HQ, 10-bit: an editing intermediate, so quality is fixed by the profile.
    return ["-c:v", codec, "-profile:v", "3", "-vendor", "apl0", "-pix_fmt", "yuv422p10le",
            "-threads", str(enc.threads)]


def chunk_extension(codec: str) -> str:
    return CODECS[codec].containers[0]


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
            "-r", str(enc.fps), "-i", "-", "-an", *codec_args(enc), *_COLOR, path,
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


_CLIP_FADE = 0.05  # seconds: a clip's own sound starts and stops without a click


def _atempo(speed: float) -> list[str]:
    """atempo takes 0.5..2 per instance; chain them for other speeds."""
    chain = []
    while speed > 2.0:
        chain.append("atempo=2")
        speed /= 2.0
    while speed < 0.5:
        chain.append("atempo=0.5")
        speed /= 0.5
    if abs(speed - 1.0) > 1e-9:
        chain.append(f"atempo={speed:.6f}")
    return chain


def audio_graph(audio: AudioSpec, duration: float, has_music: bool, first_input: int) -> str | None:
    """One filter graph for all of the video's sound: the soundtrack (volume, fades, ducked
    under kept clips) and each video clip's own sound, placed at its time and mixed once."""
    parts, labels = [], []
    k = first_input
    if has_music:
        chain = [f"volume={audio.volume:g}"]
        if audio.fade_in > 0:
            chain.append(f"afade=t=in:st=0:d={audio.fade_in:g}")
        if audio.fade_out > 0:
            chain.append(f"afade=t=out:st={max(duration - audio.fade_out, 0):.6f}:d={audio.fade_out:g}")
        kept = [c for c in audio.clips if c.keep]
        if kept:
            spans = "+".join(f"between(t,{c.at:.6f},{c.at + c.seconds:.6f})" for c in kept)
            chain.append(f"volume=eval=frame:volume='if({spans},{audio.duck:g},1)'")
        parts.append(f"[{k}:a]aresample=48000,{','.join(chain)}[music]")
        labels.append("[music]")
        k += 1
    for i, c in enumerate(audio.clips):
        chain = ["aresample=48000", *_atempo(c.speed), f"afade=t=in:st=0:d={_CLIP_FADE}",
                 f"afade=t=out:st={max(c.seconds - _CLIP_FADE, 0):.6f}:d={_CLIP_FADE}", f"volume={c.volume:g}",
                 f"adelay={round(c.at * 1000)}:all=1"]
        parts.append(f"[{k + i}:a]{','.join(chain)}[clip{i}]")
        labels.append(f"[clip{i}]")
    if not labels:
        return None
    parts.append(f"{''.join(labels)}amix=inputs={len(labels)}:normalize=0:duration=longest,apad[aout]")
    return ";".join(parts)


_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def mux(chunks: list[str], audio: AudioSpec, duration: float, local_audio: str | None,
        clip_paths: list[str], codec: str, out: str) -> None:
    """Join chunks by stream copy and mix the sound once: the soundtrack looped or trimmed
    to `duration`, and the clips' own sound at their places."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as lst:
        for c in chunks:
            lst.write("file '{}'\n".format(c.replace("'", "'\\''")))
    cmd = _QUIET + ["-f", "concat", "-safe", "0", "-i", lst.name]
    if local_audio:
        cmd += ["-stream_loop", "-1", "-i", local_audio]
    for c, path in zip(audio.clips, clip_paths):
        cmd += ["-ss", f"{c.source_start:.6f}", "-t", f"{c.seconds * c.speed:.6f}", "-i", path]
    graph = audio_graph(audio, duration, bool(local_audio), 1)
    cmd += ["-map", "0:v:0"]
    if graph:
        cmd += ["-filter_complex", graph, "-map", "[aout]", "-c:a", CODECS[codec].audio, "-ar", "48000"]
        if CODECS[codec].audio != "pcm_s16le":
            cmd += ["-b:a", "192k"]
    fmt = _FORMATS[os.path.splitext(out)[1].lower()]
    cmd += ["-c:v", "copy", "-t", f"{duration:.6f}"]
    if fmt in ("mp4", "mov"):
        cmd += ["-movflags", "+faststart"]
    cmd += ["-f", fmt, out]
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
