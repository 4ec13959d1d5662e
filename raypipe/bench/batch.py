"""`bench batch`: N listing videos as a user would otherwise make them, N separate
`python -m raypipe render` commands, against one `python -m raypipe batch`, interleaved,
with fresh caches, with the no-weights detector and with a CLIP checkpoint of the default
architecture (random weights made here: a model's cost does not depend on its weights)."""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml

from raypipe.bench.compare import ProcessTree, _become_subreaper
from raypipe.bench.registry import RUNS, arg, bench

PHOTOS = 4
SECONDS_EACH = 2.5  # 4 photos: a 10 s video


def _photos(folder: Path, videos: int) -> list[list[str]]:
    """Each video's own photographs (no two alike: dedup must not flatter the batch)."""
    from raypipe.media import load_image
    from raypipe.media.images import SAMPLES

    out = []
    for v in range(videos):
        names = []
        for k in range(PHOTOS):
            img = load_image(f"sample:{SAMPLES[(v + k) % len(SAMPLES)]}")
            h, w = img.shape[:2]
            dy, dx = (v * 7 + k) % max(1, h // 10), (v * 11 + k) % max(1, w // 10)
            crop = np.ascontiguousarray(img[dy:h - (h // 10 - dy), dx:w - (w // 10 - dx)])
            path = folder / f"v{v:03d}-{k}.png"
            cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            names.append(path.name)
        out.append(names)
    return out


def _checkpoint(folder: Path) -> list[str]:
    """ViT-B-16 with random weights, saved as a checkpoint file: loads and runs as a trained one."""
    import open_clip
    import torch

    path = folder / "vit-b-16-random.bin"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(open_clip.create_model("ViT-B-16").state_dict(), path)
    return ["detector=clip", "detector.model=ViT-B-16", f"detector.pretrained={path}", "detector.fallback=null"]


def _job(name: str, photos: list[str], folder: Path) -> dict:
    effects = ("ken_burns", "punch_in", "reframe", "pan")
    segments = [{"source": str(folder / p), "duration": SECONDS_EACH, "effect": effects[i % 4],
                 **({"transition": {"type": "crossfade", "duration": 0.4}} if i < len(photos) - 1 else {})}
                for i, p in enumerate(photos)]
    segments[0]["caption"] = {"text": f"Listing {name} · -"}  # what the listing template writes for its row
    return {"job": {"name": name, "segments": segments}}


def _measure(cmd: list[str], env: dict, log: Path) -> tuple[float, float, float, float]:
    """Wall, peak and summed RSS (MB), and CPU seconds of the command's whole process tree:
    this process is their subreaper, so every descendant, orphans too, is reaped here and
    counted in its children's usage."""
    tree = ProcessTree()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as err:
        _, wall, code = tree.run(cmd, stderr=err, env=env)
    if code != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-12:])
        sys.exit(f"error: {' '.join(cmd[:4])} failed (exit {code}):\n{tail}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    peaks = tree.peaks.values()
    return wall, max(peaks) / 1024, sum(peaks) / 1024, cpu


def _separate(folder: Path, photos, extra, env, run: Path) -> dict:
    conf = run / "conf" / "job"
    conf.mkdir(parents=True)
    wall = peak = total = cpu = 0.0
    loads, walls = 0, []
    for v, names in enumerate(photos):
        name = f"v{v:03d}"
        (conf / f"{name}.yaml").write_text("# @package _global_\n" + yaml.safe_dump(_job(name, names, folder)))
        out = run / name
        w, p, s, c = _measure([sys.executable, "-m", "raypipe", "render", "--config-dir", str(run / "conf"),
                               f"+job={name}", *extra, f"hydra.run.dir={out}", f"job.output={out}/{name}.mp4"],
                              env, run / f"{name}.err")
        wall, peak, total, cpu = wall + w, max(peak, p), total + s, cpu + c
        walls.append(w)
        loads += json.loads((out / "report.json").read_text())["clip_loads"]
    return {"wall_s": wall, "walls_s": walls, "peak_rss_mb": peak, "sum_rss_mb": total, "detector_loads": loads,
            "cpu_s": cpu}


def _batch(folder: Path, photos, extra, env, run: Path) -> dict:
    rows = run / "rows.csv"
    rows.write_text("id,address,price,photos\n" + "".join(
        f"v{v:03d},Listing v{v:03d},-,{'|'.join(str(folder / n) for n in names)}\n" for v, names in enumerate(photos)))
    cmd = [sys.executable, "-m", "raypipe", "batch", "+job=listing", f"batch.rows={rows}", *extra,
           f"batch.root={run / 'out'}", f"batch.allowed_roots=[{folder}]"]
    w, p, s, c = _measure([*cmd, f"hydra.run.dir={run / 'run'}"], env, run / "batch.err")
    report = json.loads((run / "run" / "report.json").read_text())
    if report["done"] != len(photos):
        sys.exit(f"error: the batch published {report['done']} of {len(photos)} videos")
    again, _, _, _ = _measure([*cmd, f"hydra.run.dir={run / 'again'}"], env, run / "again.err")  # unchanged: resume
    cpus = os.cpu_count() or 1
    return {"wall_s": w, "peak_rss_mb": p, "sum_rss_mb": s, "detector_loads": report["detector_loads"], "cpu_s": c,
            "render_s": report["stages"].get("render"), "rerun_s": again,
            # Detection is not rendering work, so it counts as overhead here. Its own seconds
            # are summed over threads that share the cores, so they cannot be taken off the wall.
            "overhead_per_video_s": (w - report["task_seconds"] / cpus) / len(photos),
            "detect_s": report["detect_seconds"]}


@bench("batch", arg("--videos", type=int, nargs="+", default=[8]), RUNS,
       arg("--max-separate", type=int, default=8, help="the most videos rendered one command each"),
       arg("--no-clip", action="store_true", help="the no-weights detector only"),
       arg("--width", type=int, default=1280), arg("--height", type=int, default=720), arg("--fps", default="30"),
       help="N videos: N separate renders against one batch, both detectors")
def bench_batch(args) -> dict:
    _become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="raypipe-bench-batch-"))
    try:
        return _bench(args, work)
    finally:  # its photos, checkpoint (600 MB) and videos: nothing of a run is kept
        shutil.rmtree(work, ignore_errors=True)


def _bench(args, work: Path) -> dict:
    folder = work / "photos"
    folder.mkdir()
    photos = _photos(folder, max(args.videos))
    detectors = {"saliency": ["detector=saliency"]}
    if not args.no_clip:
        detectors["clip"] = _checkpoint(work)
    size = [f"render.width={args.width}", f"render.height={args.height}", f"render.fps={args.fps}"]
    cpus = os.cpu_count() or 1
    result = {"videos": args.videos, "runs": args.runs, "cpus": cpus, "size": f"{args.width}x{args.height}@{args.fps}",
              "detectors": {}}
    for det, extra in detectors.items():
        per_n = {}
        for n in args.videos:
            runs = {"separate": [], "batch": []}
            for r in range(args.runs):
                order = ("separate", "batch") if r % 2 == 0 else ("batch", "separate")
                for variant in order:
                    if variant == "separate" and n > args.max_separate:
                        continue
                    run = work / f"{det}-{n}-{variant}-{r}"
                    run.mkdir()
                    env = {**os.environ, "RAYPIPE_CACHE_DIR": str(run / "cache"), "HF_HUB_OFFLINE": "1"}
                    fn = _separate if variant == "separate" else _batch
                    runs[variant].append(fn(folder, photos[:n], [*extra, *size], env, run))
                    print(f"{det} n={n} {variant} run {r}: {runs[variant][-1]['wall_s']:.1f} s", file=sys.stderr)
            per_n[n] = {v: _summary(rs, n, cpus) for v, rs in runs.items() if rs}
            if "separate" in per_n[n]:
                per_n[n]["speedup"] = round(per_n[n]["separate"]["wall_s"] / per_n[n]["batch"]["wall_s"], 2)
        result["detectors"][det] = per_n
    return result


def _summary(runs: list[dict], n: int, cpus: int) -> dict:
    wall = statistics.median(r["wall_s"] for r in runs)
    out = {"wall_s": round(wall, 2), "walls_s": [round(r["wall_s"], 2) for r in runs],
           "videos_per_hour_per_core": round(3600 * n / wall / cpus, 1),
           "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs)),
           "sum_rss_mb": round(statistics.median(r["sum_rss_mb"] for r in runs)),
           "detector_loads": max(r["detector_loads"] for r in runs),
           # CPU seconds of the whole process tree, and the share of the cores they kept busy
           # over the wall: near 1, a run is bound by its work, not by waiting
           "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 1),
           "cores_busy": round(statistics.median(r["cpu_s"] / (r["wall_s"] * cpus) for r in runs), 2)}
    for key in ("render_s", "rerun_s", "detect_s", "overhead_per_video_s"):
        if runs[0].get(key) is not None:
            out[key] = round(statistics.median(r[key] for r in runs), 2)
    return out


class _DetectRows:
    """Ray Data's documented pattern for a model over a table: a class run as a pool of
    actors (one detector each), `map_batches` handing it rows."""

    def __init__(self, settings):
        from raypipe.detection.detector import Made

        self.settings, self.made = settings, Made()  # loads not reported
        self.made.get(settings)  # the model loads as the actor starts, as the pattern has it

    def __call__(self, rows: dict) -> dict:
        from raypipe.detection.detector import detect_all

        found, _ = detect_all(self.settings, tuple(rows["uri"]), (), made=self.made)
        return {"uri": list(rows["uri"]), "box": [list(found[u].box) for u in rows["uri"]]}


@bench("raydata", arg("--videos", type=int, default=8), RUNS,
       help="the batch's detection thread against Ray Data's map_batches on an actor pool")
def bench_ray_data(args) -> dict:
    """The batch's detection as it runs (one detector on a driver thread, a row at a time,
    the renderers taking each row as it is out) against Ray Data's map_batches over an actor
    pool, on the same photos: seconds to the first row detected and to the last, Ray's start
    apart. Ray Data needs pandas, which raypipe does not."""
    import time

    import ray

    from raypipe.config import DetectorCfg
    from raypipe.detection.detector import Made, detect_all

    work = Path(tempfile.mkdtemp(prefix="raypipe-bench-raydata-"))
    try:
        photos = _photos(work, args.videos)
        rows = [[str(work / n) for n in names] for names in photos]
        settings = DetectorCfg(kind="saliency")
        out = {"videos": args.videos, "photos": PHOTOS * args.videos, "runs": args.runs, "thread": [], "ray_data": []}
        for _ in range(args.runs):
            t0, made, first = time.perf_counter(), Made(), None
            for row in rows:  # what batch.run's detection thread does, row by row
                detect_all(settings, tuple(row), (), made=made)
                first = first or time.perf_counter() - t0
            out["thread"].append({"first_row_s": round(first, 3), "all_s": round(time.perf_counter() - t0, 3)})
            t0 = time.perf_counter()
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            started = time.perf_counter() - t0
            import ray.data

            ds = ray.data.from_items([{"uri": u} for row in rows for u in row]).map_batches(
                _DetectRows, fn_constructor_args=(settings,), batch_size=PHOTOS,
                compute=ray.data.ActorPoolStrategy(size=1))
            first = None
            for _batch in ds.iter_batches(batch_size=PHOTOS):
                first = first or time.perf_counter() - t0
            out["ray_data"].append({"ray_start_s": round(started, 3), "first_row_s": round(first, 3),
                                    "all_s": round(time.perf_counter() - t0, 3)})
            ray.shutdown()
        for key in ("thread", "ray_data"):
            out[f"{key}_median"] = {k: round(statistics.median(r[k] for r in out[key]), 3) for k in out[key][0]}
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
