"""`bench media`: the ffmpeg binary through pipes (the previous design) against PyAV in-process."""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from raypipe.bench.common import demo_frames, median
from raypipe.bench.frames import frame_args
from raypipe.bench.registry import arg, bench

_FPS = 30
_START = 1.0  # seconds into the clip that the decode reads from: a keyframe, so no pre-roll in the figures
_VARIANTS = ("encode-pipe", "encode-pyav", "decode-pipe", "decode-pyav")


def _proc_mb(key: str, pid="self") -> float:
    """A memory line of /proc/PID/status (VmRSS, VmHWM) in MB; 0 once the process has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":")), 0.0)
    except OSError:
        return 0.0


def _reason(log) -> str:
    """ffmpeg's stderr on one line: its first two lines say what failed, the rest how it wound down."""
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()[:2]
    return re.sub(r" @ 0x[0-9a-f]+", "", " | ".join(lines))


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _pipe_encode(frames, path: str, w: int, h: int, child: dict, extra=()) -> None:
    """The previous design's ChunkEncoder (raypipe/ffmpeg.py at 08ba0f1): rgb24 frames written to
    the ffmpeg binary's stdin, its stderr to a file read only if it fails."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
             "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(_FPS), "-i", "-", "-an",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1", *extra,
             "-vf", "scale=out_color_matrix=bt709:out_range=tv",
             "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", path],
            stdin=subprocess.PIPE, stderr=log)
        try:
            for f in frames:
                proc.stdin.write(f.data)
                # Sampled while the child lives: its rusage maxrss would also count this
                # process's pages, which the child maps between fork and exec.
                child["peak_mb"] = max(child["peak_mb"], _proc_mb("VmHWM", proc.pid))
            proc.stdin.close()
        except BrokenPipeError as e:  # all the previous design's task reported: abort() dropped the log
            proc.wait()
            raise BrokenPipeError(f"{e}; ffmpeg's stderr, which that design dropped: {_reason(log)}") from None
        if proc.wait():
            raise RuntimeError(f"ffmpeg exited {proc.returncode}: {_reason(log)}")


def _pyav_encode(frames, path: str, w: int, h: int, child: dict) -> None:
    """raypipe's own ChunkEncoder (PyAV, in-process) with the pipe's settings; no child process."""
    from fractions import Fraction

    from raypipe.media import ChunkEncoder, EncodeSpec

    enc = ChunkEncoder(path, EncodeSpec(w, h, Fraction(_FPS), "h264", 18, "veryfast", 1))
    try:
        for f in frames:
            enc.write(f)
    except BaseException:
        enc.abort()
        raise
    enc.close()


def _pipe_decode(path: str, start: float, count: int, w: int, h: int, child: dict):
    """The previous design's video read (raypipe/sources.py at 08ba0f1): ffmpeg seeks, resamples to
    the output rate and writes rgb24 to stdout, read one frame-size chunk at a time."""
    size = w * h * 3
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", f"{start:.6f}",
                                 "-i", path, "-vf", f"fps={_FPS}:round=up", "-an", "-frames:v", str(count),
                                 "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE, stderr=log)
        try:
            for _ in range(count):
                buf = proc.stdout.read(size)
                if len(buf) < size:
                    if proc.wait():
                        raise RuntimeError(f"ffmpeg exited {proc.returncode}: {_reason(log)}")
                    return
                child["peak_mb"] = max(child["peak_mb"], _proc_mb("VmHWM", proc.pid))
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        finally:
            proc.kill()
            proc.wait()


def _pyav_decode(path: str, start: float, count: int, w: int, h: int, child: dict):
    """raypipe's own read (PyAV, in-process): the frame on screen at each output time."""
    from raypipe.media import read_frames

    return read_frames(path, start, 1.0, _FPS, count)


_ENCODERS = {"pipe": _pipe_encode, "pyav": _pyav_encode}
_DECODERS = {"pipe": _pipe_decode, "pyav": _pyav_decode}


def _media_worker(args) -> dict:
    """One variant once, in a fresh process, so that its peak memory is its own."""
    task, variant = args.worker.split("-")
    w, h, n = args.width, args.height, args.frames
    if task == "encode":
        frames = np.fromfile(f"{args.dir}/frames.rgb", np.uint8).reshape(n, h, w, 3)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to VmRSS: the peak from here on is the variant's, not the set-up's
    base = _proc_mb("VmRSS")
    if variant == "pyav":
        import av  # noqa: F401  (its libraries' pages count in its memory, as the binary's do in the child's)
    child = {"peak_mb": 0.0}
    cpu0, t0 = sum(os.times()[:4]), time.perf_counter()
    if task == "encode":
        _ENCODERS[variant](frames, f"{args.dir}/{args.worker}.mp4", w, h, child)
    else:
        got = sum(1 for _ in _DECODERS[variant](f"{args.dir}/clip.mp4", _START, n, w, h, child))
        if got != n:
            raise RuntimeError(f"{args.worker} gave {got} of {n} frames")
    wall, cpu = time.perf_counter() - t0, sum(os.times()[:4]) - cpu0  # os.times counts waited children
    return {"ms_per_frame": wall / n * 1000, "cpu_ms_per_frame": cpu / n * 1000,
            "peak_rss_mb": _proc_mb("VmHWM") - base + child["peak_mb"], "child_peak_rss_mb": child["peak_mb"]}


def _mean_error(decoded, source) -> float:
    """Mean |decoded - source| over all pixels and channels, 0..255."""
    return round(float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(decoded, source)])), 2)


def _colour_tags(path: str) -> str:
    """matrix/primaries/transfer/range as the stream states them (FFmpeg's AVCOL_* codes)."""
    import av

    with av.open(path) as c:
        cc = c.streams.video[0].codec_context
        return f"{cc.colorspace}/{cc.color_primaries}/{cc.color_trc}/{cc.color_range}"


def _read_outcome(frames, count: int) -> str:
    got = 0
    try:
        for _ in frames:
            got += 1
    except Exception as e:
        return f"{got} of {count} frames, then {type(e).__name__}: {e}"
    return f"{got} of {count} frames, no error"


def _write_outcome(write) -> str:
    try:
        write()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return "no error"


@bench("media", *frame_args(120, 1920, 1080),
       # internal: the bench runs each variant through these in a fresh process
       arg("--worker", choices=_VARIANTS, help=argparse.SUPPRESS), arg("--dir", help=argparse.SUPPRESS))
def bench_media(args) -> dict:
    """Encode and decode per frame, the ffmpeg binary through pipes against PyAV in-process.

    Wall and CPU time and peak memory, each variant in a fresh process, and what each says when
    the disk is full or the input truncated."""
    if args.worker:
        return _media_worker(args)
    import av

    w, h, n = args.width, args.height, args.frames
    runs: dict[str, list[dict]] = {v: [] for v in _VARIANTS}
    no_child = {"peak_mb": 0.0}
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        frames = np.stack(demo_frames(w, h, n))
        frames.tofile(f"{tmp}/frames.rgb")
        # The clip to decode: the move there and back (2n frames) with a keyframe each second, as
        # cameras write, so the seek to _START lands on one; index at the front for the truncation.
        there_and_back = itertools.chain(frames, frames[::-1])
        _pipe_encode(there_and_back, f"{tmp}/clip.mp4", w, h, no_child,
                     ["-g", str(_FPS), "-movflags", "+faststart"])
        for r in range(args.rounds):
            for v in _VARIANTS:
                proc = subprocess.run([sys.executable, "-m", "raypipe", "bench", "media", "--worker", v, "--dir", tmp,
                                       "--width", str(w), "--height", str(h), "--frames", str(n)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(f"{v} failed: {proc.stderr.strip().splitlines()[-1]}")
                runs[v].append(json.loads(proc.stdout))
                print(f"round {r}, {v}: {runs[v][-1]['ms_per_frame']:.1f} ms/frame", file=sys.stderr)

        def summary(v: str) -> dict:
            out = {k: median(run[k] for run in runs[v]) for k in ("ms_per_frame", "cpu_ms_per_frame", "peak_rss_mb")}
            out["ms_per_frame_all"] = [round(run["ms_per_frame"], 2) for run in runs[v]]
            if v.endswith("pipe"):
                out["peak_rss_mb of the ffmpeg child"] = median(run["child_peak_rss_mb"] for run in runs[v])
            return out

        source = [frames[k] if k < n else frames[2 * n - 1 - k] for k in range(_FPS, _FPS + n)]
        encode, decode = {}, {}
        for kind in ("pipe", "pyav"):
            out = f"{tmp}/encode-{kind}.mp4"
            encode[kind] = {**summary(f"encode-{kind}"), "bytes_per_frame": os.path.getsize(out) // n,
                            "mean_abs_error_vs_source": _mean_error(_pipe_decode(out, 0.0, n, w, h, no_child), frames),
                            "colour tags, matrix/primaries/trc/range (1: BT.709 or tv, 2: unspecified)":
                                _colour_tags(out)}
            decode[kind] = {**summary(f"decode-{kind}"), "mean_abs_error_vs_source": _mean_error(
                _DECODERS[kind](f"{tmp}/clip.mp4", _START, n, w, h, no_child), source)}

        os.symlink("/dev/full", f"{tmp}/full.mp4")
        clip = Path(tmp, "clip.mp4").read_bytes()
        Path(tmp, "cut-front-index.mp4").write_bytes(clip[:len(clip) // 2])
        chunk = Path(tmp, "encode-pipe.mp4").read_bytes()  # no faststart: the index is written last
        Path(tmp, "cut-end-index.mp4").write_bytes(chunk[:len(chunk) // 2])
        robustness = {
            "output disk full (writing to /dev/full)": {
                kind: _write_outcome(lambda enc=enc: enc(frames, f"{tmp}/full.mp4", w, h, no_child))
                for kind, enc in _ENCODERS.items()},
            **{f"input truncated at half, index at the {where}, reading {n} frames from {start:g} s": {
                kind: _read_outcome(dec(f"{tmp}/cut-{where}-index.mp4", start, n, w, h, no_child), n)
                for kind, dec in _DECODERS.items()}
               for where, start in (("end", 0.0), ("front", _START))},
        }
    version = subprocess.run([_ffmpeg(), "-version"], capture_output=True, text=True).stdout.split()[2]
    return {
        "size": f"{w}x{h}", "frames": n, "rounds": args.rounds, "host_cores": os.cpu_count(),
        "pipe": f"ffmpeg binary {version} (imageio-ffmpeg)",
        "pyav": f"av {av.__version__}, libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}",
        "encode: libx264 veryfast crf 18, 1 thread, yuv420p BT.709 tv range": encode,
        f"decode: {n} frames from {_START:g} s into a {2 * n}-frame clip, to rgb24": decode,
        "robustness": robustness,
    }
