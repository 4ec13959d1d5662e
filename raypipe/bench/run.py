"""Benchmarks: `python -m raypipe bench {render,batch,raydata,local,nodes,compare,cache,detect,clip,...}`.

Every figure is a median over rounds, and alternatives are measured interleaved in the same
run, because these machines are shared and noisy: compare ratios, not absolute numbers
taken on different days.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def _median(values) -> float:
    return round(statistics.median(values), 3)


def _demo_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """Real frames to measure with: a ken_burns move over the astronaut, as the demo opens."""
    from raypipe.detection.saliency import detect_saliency
    from raypipe.frames.effects import Shot, make_params
    from raypipe.media import load_image

    img = load_image("sample:astronaut")
    subject = detect_saliency(img)
    shot = Shot("ken_burns", make_params("ken_burns", {"zoom": 1.8}), width, height)
    return [shot.frame(img, subject, k / (count - 1)) for k in range(count)]


def _first_render(run_dir) -> list[str]:
    """An empty cache of its own, so every run measures a first render."""
    return [f"cache.root={run_dir}/cache"]


def _render(overrides: list[str], run_dir: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "raypipe", "render", *overrides, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"render failed: {proc.stderr.strip().splitlines()[-1]}")
    return wall, json.loads((run_dir / "report.json").read_text())


def bench_cache(args) -> dict:
    """Re-renders through the CLI against a first render: unchanged, one caption edited, the
    job where Ray has one CPU (as on a machine with another core count: segments split into
    other task ranges), and a driver killed half-way (SIGKILL) then the same command run again."""
    again = ("unchanged", "caption", "other_split", "resumed")
    rows: dict[str, list[float]] = {k: [] for k in ("first", *again)}
    work: dict[str, list[float]] = {k: [] for k in again}
    killed_at = []
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        for r in range(args.runs):
            base = [*args.overrides, f"cache.root={tmp}/cache-{r}"]
            edit = f"job.segments.{args.caption_segment}.caption.text=edited in round {r}"
            renders = (("first", []), ("unchanged", []), ("caption", [edit]), ("other_split", ["ray.num_cpus=1"]))
            for name, extra in renders:
                wall, report = _render([*base, *extra], Path(tmp) / f"{name}-{r}")
                rows[name].append(wall)
                if name != "first":
                    work[name].append(report["cache"]["frames_rendered"] / report["frames"])
                if name == "first":
                    tasks = report["tasks"]
            # The driver killed once half of the tasks' chunks are stored, then run again.
            cache = Path(tmp) / f"kill-cache-{r}"
            killed = [*args.overrides, f"cache.root={cache}"]
            proc = subprocess.Popen([sys.executable, "-m", "raypipe", "render", *killed,
                                     f"hydra.run.dir={tmp}/killed-{r}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while len(list(cache.rglob("[0-9]*.mp4"))) < tasks / 2 and proc.poll() is None:
                time.sleep(0.01)
            proc.kill()
            proc.wait()
            killed_at.append(len(list(cache.rglob("[0-9]*.mp4"))) / tasks)
            wall, report = _render(killed, Path(tmp) / f"resumed-{r}")
            rows["resumed"].append(wall)
            work["resumed"].append(report["cache"]["frames_rendered"] / report["frames"])
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), file=sys.stderr)
    first = _median(rows["first"])
    return {
        "overrides": args.overrides, "runs": args.runs, "tasks": tasks,
        "wall_s_median": {k: _median(v) for k, v in rows.items()},
        "wall_s_all": {k: [round(x, 2) for x in v] for k, v in rows.items()},
        # Each round's re-render against the first render of the same round.
        "of_first_render_median": {k: _median(w / f for w, f in zip(rows[k], rows["first"]))
                                   for k in again},
        "frames_rendered_fraction_median": {k: _median(v) for k, v in work.items()},
        "killed_at_chunks_fraction_median": _median(killed_at),
        "first_render_s": first,
    }


# An open_clip architecture small enough to measure the code path around the model (the
# tests use the same one); the cost of an architecture does not depend on its weights.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def bench_clip(args) -> dict:
    """CLIP detection per image, one image per forward pass against `--batch`, through the
    detector's own path (prepare, forward, subject), on random weights saved as a checkpoint."""
    import open_clip
    import torch
    from omegaconf import OmegaConf

    from raypipe.config import DetectorCfg
    from raypipe.detection.clip import ClipDetector
    from raypipe.media import load_image
    from raypipe.media.images import SAMPLES

    torch.manual_seed(0)
    images = [load_image(f"sample:{SAMPLES[i % len(SAMPLES)]}") for i in range(args.sources)]
    per_image: dict[int, list[float]] = {1: [], args.batch: []}
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        config = None
        if args.model == "tiny-clip":
            config = Path(tmp) / "tiny-clip.json"
            config.write_text(json.dumps(TINY_CLIP))
            open_clip.add_model_config(config)
        size = [args.size, args.size] if args.size else None
        model = open_clip.create_model(args.model, force_image_size=tuple(size) if size else None)
        checkpoint = Path(tmp) / "open_clip_pytorch_model.bin"
        torch.save(model.state_dict(), checkpoint)
        del model
        detectors = {b: ClipDetector(OmegaConf.structured(DetectorCfg(
            model=args.model, pretrained=str(checkpoint), model_config=str(config) if config else None,
            image_size=size, batch_size=b, num_cpus=os.cpu_count() or 1)))
            for b in per_image}
        for r in range(args.rounds + 1):  # the first round warms up
            for b, det in detectors.items():
                t0 = time.perf_counter()
                for i in range(0, len(images), b):
                    det.detect_prepared([det.prepare(img) for img in images[i:i + b]], ("a person", "an animal"))
                if r:
                    per_image[b].append((time.perf_counter() - t0) / len(images))
    one, batched = _median(per_image[1]), _median(per_image[args.batch])
    return {
        "model": args.model, "input": list(detectors[1].model.visual.image_size), "sources": args.sources,
        "rounds": args.rounds, "threads": torch.get_num_threads(),
        "ms_per_image": {"batch 1": round(one * 1000, 2), f"batch {args.batch}": round(batched * 1000, 2)},
        "images_per_s": {"batch 1": round(1 / one, 1), f"batch {args.batch}": round(1 / batched, 1)},
        "speedup": round(one / batched, 2),
    }


def bench_detect(args) -> dict:
    """The detector against labelled images: box IoU, how much of each face every effect keeps
    in frame, time per image (see raypipe/score.py)."""
    from omegaconf import OmegaConf

    from raypipe.api import config
    from raypipe.bench import score

    detector = OmegaConf.to_object(config("demo", args.overrides).detector)
    return score.run(detector, args.labels, per_image=args.per_image)


def bench_render(args) -> dict:
    """Whole renders through the CLI, start-up included, as a user runs them."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        for i in range(args.runs):
            run_dir = Path(tmp) / f"run{i}"
            runs.append(_render([*args.overrides, *_first_render(run_dir)], run_dir))
            print(f"run {i}: {runs[-1][0]:.2f} s wall", file=sys.stderr)
    reports = [r for _, r in runs]
    return {
        "job": reports[0]["job"], "frames": reports[0]["frames"], "runs": args.runs,
        "wall_s_median": _median(w for w, _ in runs),
        "wall_s_all": [round(w, 2) for w, _ in runs],
        "stages_s_median": {k: _median(r["stages"][k] for r in reports) for k in reports[0]["stages"]},
        "segment_worker_peak_rss_mb_median": _median(  # its encoder included: it runs in-process
            max(s["peak_rss_mb"] for s in r["segment_runs"]) for r in reports),
        "detector": reports[0]["detector"],
    }


def bench_local(args) -> dict:
    """One machine: the job on an embedded Ray (forced: ray.min_saving_s=0) against the driver
    alone on its threads, interleaved, each a first render; and which the default picks."""
    times: dict[str, list[float]] = {"ray": [], "driver": []}
    walls: dict[str, list[float]] = {"ray": [], "driver": []}
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        for r in range(args.runs):
            for name, saving in (("ray", "0"), ("driver", "1e9")):
                run_dir = Path(tmp) / f"{name}-{r}"
                wall, report = _render([*args.overrides, *_first_render(run_dir), f"ray.min_saving_s={saving}"],
                                       run_dir)
                times[name].append(report["stages"]["total"])
                walls[name].append(wall)
                print(f"round {r}: {name} {report['stages']['total']:.2f} s to the result", file=sys.stderr)
        chosen = _default_choice(args.overrides, Path(tmp) / "plan")
    return {
        "overrides": args.overrides, "runs": args.runs, "cpus": os.cpu_count(), "frames": report["frames"],
        "result_s_median": {k: _median(v) for k, v in times.items()},
        "exit_s_median": {k: _median(v) for k, v in walls.items()},
        "ray_over_driver": _median(a / b for a, b in zip(times["ray"], times["driver"])),
        "default_renders_on": chosen,
    }


def _default_choice(overrides: list[str], run_dir: Path) -> str:
    """Where `python -m raypipe render` renders this job on this machine by default (empty cache)."""
    from raypipe.bench.compare import compose
    from raypipe.plan.cost import frames_per_task, local_slots, ordered_tasks, worth_starting_ray
    from raypipe.plan.validate import prepare

    cfg = compose(overrides)
    plan, _ = prepare(cfg, str(run_dir))
    slots = local_slots(cfg.ray)
    tasks = ordered_tasks(plan, frames_per_task(plan, cfg, slots))
    return "ray" if worth_starting_ray(tasks, plan.encode, slots, cfg.ray.min_saving_s) else "driver"


def bench_nodes(args) -> dict:
    """Whole renders against a Ray cluster of 1, 2, 3... worker nodes started on this
    machine (separate processes, one CPU each, a CPU-less head); rounds interleave the sizes."""
    from ray.cluster_utils import Cluster

    walls: dict[int, list[float]] = {n: [] for n in args.nodes}
    stages: dict[int, list[dict]] = {n: [] for n in args.nodes}
    with tempfile.TemporaryDirectory(prefix="rpb-") as tmp:
        for r in range(args.runs):
            for n in args.nodes:
                cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
                try:
                    for i in range(n):
                        cluster.add_node(num_cpus=1, temp_dir=f"{tmp}/r{r}n{n}w{i}")
                    cluster.wait_for_nodes()
                    run_dir = Path(tmp) / f"run{r}-{n}"
                    t0 = time.perf_counter()
                    proc = subprocess.run([sys.executable, "-m", "raypipe", "render", *args.overrides,
                                           f"ray.address={cluster.address}", f"hydra.run.dir={run_dir}",
                                           *_first_render(run_dir)], capture_output=True, text=True)
                    wall = time.perf_counter() - t0
                finally:
                    cluster.shutdown()
                if proc.returncode != 0:
                    sys.exit(f"render failed: {proc.stderr.strip().splitlines()[-1]}")
                report = json.loads((run_dir / "report.json").read_text())
                walls[n].append(wall)
                stages[n].append(report["stages"])
                print(f"round {r}, {n} node(s): {wall:.2f} s wall", file=sys.stderr)
    return {
        "overrides": args.overrides, "runs": args.runs, "cpus_per_node": 1, "host_cores": os.cpu_count(),
        **{f"{n} node(s)": {"wall_s_median": _median(walls[n]), "wall_s_all": [round(w, 2) for w in walls[n]],
                            "segments_s_median": _median(s["segments"] for s in stages[n]),
                            "detect_s_median": _median(s["detect"] for s in stages[n])}
           for n in args.nodes},
    }


def bench_handoff(args) -> dict:
    """Segments encode their own chunks (joined by stream copy) versus segments writing
    frame files that the muxer encodes once. Both sides run in each round, interleaved."""
    from raypipe.media import ChunkEncoder, EncodeSpec
    from raypipe.plan.timeline import parse_fps

    frames = _demo_frames(args.width, args.height, args.frames)
    task_enc = EncodeSpec(args.width, args.height, parse_fps(30), "h264", 18, "veryfast", 1)
    mux_enc = EncodeSpec(args.width, args.height, parse_fps(30), "h264", 18, "veryfast", os.cpu_count() or 1)
    chunk_task, png_task, png_mux, chunk_bytes, png_bytes = [], [], [], 0, 0
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            enc = ChunkEncoder(f"{tmp}/chunk.mp4", task_enc)
            for f in frames:
                enc.write(f)
            enc.close()
            chunk_task.append((time.perf_counter() - t0) / len(frames))
            chunk_bytes = os.path.getsize(f"{tmp}/chunk.mp4")

            t0 = time.perf_counter()
            for k, f in enumerate(frames):  # fastest PNG level: files cost bytes, not CPU
                cv2.imwrite(f"{tmp}/{k:05d}.png", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            png_task.append((time.perf_counter() - t0) / len(frames))
            png_bytes = sum(os.path.getsize(f"{tmp}/{k:05d}.png") for k in range(len(frames)))

            t0 = time.perf_counter()
            enc = ChunkEncoder(f"{tmp}/whole.mp4", mux_enc)
            for k in range(len(frames)):
                enc.write(cv2.cvtColor(cv2.imread(f"{tmp}/{k:05d}.png"), cv2.COLOR_BGR2RGB))
            enc.close()
            png_mux.append((time.perf_counter() - t0) / len(frames))
    a, b, m = (statistics.median(v) * 1000 for v in (chunk_task, png_task, png_mux))
    result = {
        "size": f"{args.width}x{args.height}", "frames": args.frames, "rounds": args.rounds,
        "chunks: encode in the task, ms/frame": round(a, 2),
        "frame files: PNG write in the task, ms/frame": round(b, 2),
        "frame files: read + encode in the muxer, ms/frame (serial)": round(m, 2),
        "chunks: bytes per frame moved through storage": chunk_bytes // args.frames,
        "frame files: bytes per frame moved through storage": png_bytes // args.frames,
    }
    # The muxer's encode cannot start before the last frame file exists, and runs on one
    # node: it is serial work that no number of workers removes.
    n = 450  # the demo's frames
    for workers in (2, 16):
        projected = f"projected encode wall for {n} frames on {workers} workers, chunks (s)"
        result[projected] = round(n * a / workers / 1000, 2)
        result[f"projected encode wall for {n} frames on {workers} workers, frame files (s)"] = round(
            (n * b / workers + n * m) / 1000, 2)
    return result


def bench_effects(args) -> dict:
    """Render cost per frame of each effect, transition and caption on one core (cv2
    threads = 1), moving cameras sampled over a whole shot so no frame repeats the previous."""
    from raypipe.detection.saliency import detect_saliency
    from raypipe.frames.captions import CaptionStyle, layout, overlay
    from raypipe.frames.effects import EFFECTS, Shot, make_params
    from raypipe.frames.transitions import TRANSITIONS
    from raypipe.media import load_image

    cv2.setNumThreads(1)
    w, h, n = args.width, args.height, args.frames
    stills = []
    for name in ("astronaut", "coffee"):
        big = cv2.resize(load_image(f"sample:{name}"), (2048, 2048), interpolation=cv2.INTER_CUBIC)  # camera-sized
        stills.append((big, detect_saliency(big)))
    (img, subject), (img_b, subject_b) = stills
    result = {"size": f"{w}x{h}", "source": "2048x2048", "frames": n, "rounds": args.rounds}

    def timed(make, step) -> dict:
        per_frame, first = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            state = make()
            step(state, 0.0)  # builds pyramids and blurs: once per shot for a still
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for k in range(1, n):
                step(state, k / (n - 1))
            per_frame.append((time.perf_counter() - t0) / (n - 1))
        return {"ms_per_frame": round(statistics.median(per_frame) * 1000, 2),
                "first_frame_ms": round(statistics.median(first) * 1000, 1)}

    def shot(name, params=None):
        return Shot(name, make_params(name, params or {}), w, h, 3.0)

    # Looks are measured on their animated settings where they have them.
    animated = {"focus": {"strength": 0.0, "strength_end": 1.0}}
    for name in EFFECTS:
        result[f"effect {name}"] = timed(lambda name=name: shot(name, animated.get(name)),
                                         lambda s, p: s.frame(img, subject, p))
    for name, tr in TRANSITIONS.items():
        if tr.blend is None:
            continue
        params = make_params(name, {}, TRANSITIONS, "transition")
        result[f"transition {name} (both shots ken_burns)"] = timed(
            lambda: (shot("ken_burns"), shot("ken_burns")),
            lambda s, p, tr=tr, params=params: tr.blend(lambda z=1.0: s[0].frame(img, subject, p, z),
                                                        lambda z=1.0: s[1].frame(img_b, subject_b, p, z), p, params))
    frame = shot("static").frame(img, subject, 0.0)
    style = CaptionStyle("A caption over the picture, two lines of it when the frame is narrow", "DejaVu Sans", 0.05,
                         "white", 0.08, "black", True, "black", 0.55, "auto", 0.05, 0.3, 0.3)
    result["caption overlay (laid out once)"] = timed(
        lambda: layout(style, w, h).rgba, lambda rgba, p: overlay(frame, rgba, (40, h - 200), 0.5 + 0.5 * p))
    return result


# ---- media: the ffmpeg binary through pipes (the previous design) against PyAV in-process ----

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
        frames = np.stack(_demo_frames(w, h, n))
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
            out = {k: _median(run[k] for run in runs[v]) for k in ("ms_per_frame", "cpu_ms_per_frame", "peak_rss_mb")}
            out["ms_per_frame_all"] = [round(run["ms_per_frame"], 2) for run in runs[v]]
            if v.endswith("pipe"):
                out["peak_rss_mb of the ffmpeg child"] = _median(run["child_peak_rss_mb"] for run in runs[v])
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


def _ray_data(args) -> dict:
    from raypipe.bench.batch import bench_ray_data

    return bench_ray_data(args)


def _batch(args) -> dict:
    from raypipe.bench.batch import bench_batch

    return bench_batch(args)


def main(argv: list[str]) -> None:
    from raypipe.bench.score import LABELS

    parser = argparse.ArgumentParser(prog="python -m raypipe bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="which", required=True)
    p = sub.add_parser("render", help="whole CLI renders; medians of wall time, stages and worker memory")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("overrides", nargs="*", default=[], help="Hydra overrides (default: +job=demo)")
    p.set_defaults(fn=bench_render)
    p = sub.add_parser("batch", help="N videos: N separate renders against one batch, both detectors")
    p.add_argument("--videos", type=int, nargs="+", default=[8])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--max-separate", type=int, default=8, help="the most videos rendered one command each")
    p.add_argument("--no-clip", action="store_true", help="the no-weights detector only")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", default="30")
    p.set_defaults(fn=_batch)
    p = sub.add_parser("raydata", help="the batch's detection thread against Ray Data's map_batches on an actor pool")
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.set_defaults(fn=_ray_data)
    p = sub.add_parser("local", help="one machine: an embedded Ray against the driver's threads")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("overrides", nargs="*", default=[], help="Hydra overrides (default: +job=demo)")
    p.set_defaults(fn=bench_local)
    p = sub.add_parser("nodes", help="whole renders on local Ray clusters of several worker nodes")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("overrides", nargs="*", default=[], help="Hydra overrides (default: +job=demo)")
    p.set_defaults(fn=bench_nodes)
    p = sub.add_parser("detect", help="the detector against labelled images: box IoU, faces kept in frame")
    p.add_argument("--labels", default=str(LABELS))
    p.add_argument("--per-image", action="store_true", help="also each image's box, IoU and faces kept")
    p.add_argument("overrides", nargs="*", default=[], help="detector overrides (default: detector=saliency)")
    p.set_defaults(fn=bench_detect)
    p = sub.add_parser("clip", help="CLIP detection per image: one per forward pass against batched")
    p.add_argument("--model", default="tiny-clip", help="an open_clip architecture (random weights)")
    p.add_argument("--size", type=int, default=None, help="input side in pixels (default: the model's)")
    p.add_argument("--sources", type=int, default=16)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.set_defaults(fn=bench_clip)
    p = sub.add_parser("cache", help="re-renders: unchanged, one caption edited, a killed driver's rerun")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--caption-segment", type=int, default=0, help="the segment whose caption is edited")
    p.add_argument("overrides", nargs="*", default=[], help="Hydra overrides (default: +job=demo)")
    p.set_defaults(fn=bench_cache)
    from raypipe.bench import compare  # the side-by-side benchmark lives in its own module
    compare.add_parser(sub)
    for name, fn, frames, (width, height) in (("handoff", bench_handoff, 120, (1280, 720)),
                                              ("effects", bench_effects, 60, (1920, 1080)),
                                              ("media", bench_media, 120, (1920, 1080))):
        p = sub.add_parser(name, help=fn.__doc__.splitlines()[0])
        p.add_argument("--frames", type=int, default=frames)
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--width", type=int, default=width)
        p.add_argument("--height", type=int, default=height)
        p.set_defaults(fn=fn)
        if name == "media":  # internal: the bench runs each variant through these in a fresh process
            p.add_argument("--worker", choices=_VARIANTS, help=argparse.SUPPRESS)
            p.add_argument("--dir", help=argparse.SUPPRESS)
    # Hydra overrides may come before or after the options; argparse takes them in one run.
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "overrides") or any(x.startswith("-") for x in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if hasattr(args, "overrides"):
        default = ["detector=saliency"] if args.which == "detect" else [] if getattr(args, "editly", None) \
            else ["+job=demo"]
        args.overrides = [*args.overrides, *extra] or default
    print(json.dumps(args.fn(args), indent=2))
