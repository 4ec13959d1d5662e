"""Per-frame costs on one machine: `bench handoff` (how a task's frames reach the muxer) and
`bench effects` (each effect, transition and caption)."""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import cv2

from raypipe.bench.common import demo_frames
from raypipe.bench.registry import Arg, arg, bench


def frame_args(frames: int, width: int, height: int) -> tuple[Arg, ...]:
    """The options of a per-frame benchmark: how many frames, rounds, and the frame size."""
    return (arg("--frames", type=int, default=frames), arg("--rounds", type=int, default=3),
            arg("--width", type=int, default=width), arg("--height", type=int, default=height))


@bench("handoff", *frame_args(120, 1280, 720))
def bench_handoff(args) -> dict:
    """Segments encode their own chunks (joined by stream copy) versus segments writing
    frame files that the muxer encodes once. Both sides run in each round, interleaved."""
    from raypipe.media import ChunkEncoder, EncodeSpec
    from raypipe.plan.timeline import parse_fps

    frames = demo_frames(args.width, args.height, args.frames)
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


@bench("effects", *frame_args(60, 1920, 1080))
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
