"""Benchmarks: `python -m raypipe bench {render,nodes,handoff,effects} [options]`.

Every figure is a median over rounds, and alternatives are measured interleaved in the same
run, because these machines are shared and noisy: compare ratios, not absolute numbers
taken on different days.
"""
from __future__ import annotations

import argparse
import json
import os
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
    from raypipe.effects import Shot, make_params
    from raypipe.saliency import detect_saliency
    from raypipe.sources import load_image

    img = load_image("sample:astronaut")
    subject = detect_saliency(img)
    shot = Shot("ken_burns", make_params("ken_burns", {"zoom": 1.8}), width, height)
    return [shot.frame(img, subject, k / (count - 1)) for k in range(count)]


def bench_render(args) -> dict:
    """Whole renders through the CLI, start-up included, as a user runs them."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        for i in range(args.runs):
            run_dir = Path(tmp) / f"run{i}"
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "raypipe", "render", *args.overrides,
                                   f"hydra.run.dir={run_dir}"], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(f"render failed: {proc.stderr.strip().splitlines()[-1]}")
            report = json.loads((run_dir / "report.json").read_text())
            runs.append((wall, report))
            print(f"run {i}: {wall:.2f} s wall", file=sys.stderr)
    reports = [r for _, r in runs]
    return {
        "job": reports[0]["job"], "frames": reports[0]["frames"], "runs": args.runs,
        "wall_s_median": _median(w for w, _ in runs),
        "wall_s_all": [round(w, 2) for w, _ in runs],
        "stages_s_median": {k: _median(r["stages"][k] for r in reports) for k in reports[0]["stages"]},
        "segment_worker_peak_rss_mb_median": _median(
            max(s["peak_rss_mb"] for s in r["segment_runs"]) for r in reports),
        "encoder_peak_rss_mb_median": _median(
            max(s["encoder_peak_rss_mb"] for s in r["segment_runs"]) for r in reports),
        "detector": reports[0]["detector"],
    }


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
                                           f"ray.address={cluster.address}", f"hydra.run.dir={run_dir}"],
                                          capture_output=True, text=True)
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
    from raypipe.ffmpeg import ChunkEncoder
    from raypipe.timeline import EncodeSpec, parse_fps

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
        result[f"projected encode wall for {n} frames on {workers} workers, chunks (s)"] = round(n * a / workers / 1000, 2)
        result[f"projected encode wall for {n} frames on {workers} workers, frame files (s)"] = round(
            (n * b / workers + n * m) / 1000, 2)
    return result


def bench_effects(args) -> dict:
    """Render cost per frame of each effect, transition and caption on one core (cv2
    threads = 1), moving cameras sampled over a whole shot so no frame repeats the previous."""
    from raypipe.captions import CaptionStyle, layout, overlay
    from raypipe.effects import EFFECTS, TRANSITIONS, Shot, make_params
    from raypipe.saliency import detect_saliency
    from raypipe.sources import load_image

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
    result["caption overlay (laid out once)"] = timed(lambda: layout(style, w, h),
                                                      lambda cap, p: overlay(frame, cap, (40, h - 200), 0.5 + 0.5 * p))
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m raypipe bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="which", required=True)
    p = sub.add_parser("render", help="whole CLI renders; medians of wall time, stages and worker memory")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("overrides", nargs="*", default=["+job=demo"], help="Hydra overrides (default: +job=demo)")
    p.set_defaults(fn=bench_render)
    p = sub.add_parser("nodes", help="whole renders on local Ray clusters of several worker nodes")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("overrides", nargs="*", default=["+job=demo"], help="Hydra overrides (default: +job=demo)")
    p.set_defaults(fn=bench_nodes)
    for name, fn, frames in (("handoff", bench_handoff, 120), ("effects", bench_effects, 60)):
        p = sub.add_parser(name, help=fn.__doc__.splitlines()[0])
        p.add_argument("--frames", type=int, default=frames)
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--width", type=int, default=1920 if name == "effects" else 1280)
        p.add_argument("--height", type=int, default=1080 if name == "effects" else 720)
        p.set_defaults(fn=fn)
    args = parser.parse_args(argv)
    print(json.dumps(args.fn(args), indent=2))
