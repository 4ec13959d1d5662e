"""Whole renders through the CLI, start-up included, as a user runs them: `bench render`,
`local` (an embedded Ray against the driver's threads), `nodes` (local Ray clusters) and
`cache` (re-renders)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from raypipe.bench.common import median
from raypipe.bench.registry import DEMO, RUNS, arg, bench


def first_render(run_dir) -> list[str]:
    """An empty cache of its own, so every run measures a first render."""
    return [f"cache.root={run_dir}/cache"]


def render_cli(args: list[str], run_dir: Path) -> float:
    """Seconds `python -m raypipe render ARGS` takes to exit, writing into run_dir; a failed
    render ends the benchmark with its last line."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "raypipe", "render", *args, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"render failed: {proc.stderr.strip().splitlines()[-1]}")
    return wall


def _render(overrides: list[str], run_dir: Path) -> tuple[float, dict]:
    return render_cli(overrides, run_dir), json.loads((run_dir / "report.json").read_text())


@bench("cache", RUNS, arg("--caption-segment", type=int, default=0, help="the segment whose caption is edited"),
       help="re-renders: unchanged, one caption edited, a killed driver's rerun", overrides=DEMO)
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
    first = median(rows["first"])
    return {
        "overrides": args.overrides, "runs": args.runs, "tasks": tasks,
        "wall_s_median": {k: median(v) for k, v in rows.items()},
        "wall_s_all": {k: [round(x, 2) for x in v] for k, v in rows.items()},
        # Each round's re-render against the first render of the same round.
        "of_first_render_median": {k: median(w / f for w, f in zip(rows[k], rows["first"]))
                                   for k in again},
        "frames_rendered_fraction_median": {k: median(v) for k, v in work.items()},
        "killed_at_chunks_fraction_median": median(killed_at),
        "first_render_s": first,
    }


# An open_clip architecture small enough to measure the code path around the model (the

@bench("render", RUNS, help="whole CLI renders; medians of wall time, stages and worker memory", overrides=DEMO)
def bench_render(args) -> dict:
    """Whole renders through the CLI, start-up included, as a user runs them."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        for i in range(args.runs):
            run_dir = Path(tmp) / f"run{i}"
            runs.append(_render([*args.overrides, *first_render(run_dir)], run_dir))
            print(f"run {i}: {runs[-1][0]:.2f} s wall", file=sys.stderr)
    reports = [r for _, r in runs]
    return {
        "job": reports[0]["job"], "frames": reports[0]["frames"], "runs": args.runs,
        "wall_s_median": median(w for w, _ in runs),
        "wall_s_all": [round(w, 2) for w, _ in runs],
        "stages_s_median": {k: median(r["stages"][k] for r in reports) for k in reports[0]["stages"]},
        "segment_worker_peak_rss_mb_median": median(  # its encoder included: it runs in-process
            max(s["peak_rss_mb"] for s in r["segment_runs"]) for r in reports),
        "detector": reports[0]["detector"],
    }


@bench("local", RUNS, help="one machine: an embedded Ray against the driver's threads", overrides=DEMO)
def bench_local(args) -> dict:
    """One machine: the job on an embedded Ray (forced: ray.min_saving_s=0) against the driver
    alone on its threads, interleaved, each a first render; and which the default picks."""
    times: dict[str, list[float]] = {"ray": [], "driver": []}
    walls: dict[str, list[float]] = {"ray": [], "driver": []}
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        for r in range(args.runs):
            for name, saving in (("ray", "0"), ("driver", "1e9")):
                run_dir = Path(tmp) / f"{name}-{r}"
                wall, report = _render([*args.overrides, *first_render(run_dir), f"ray.min_saving_s={saving}"],
                                       run_dir)
                times[name].append(report["stages"]["total"])
                walls[name].append(wall)
                print(f"round {r}: {name} {report['stages']['total']:.2f} s to the result", file=sys.stderr)
        chosen = _default_choice(args.overrides, Path(tmp) / "plan")
    return {
        "overrides": args.overrides, "runs": args.runs, "cpus": os.cpu_count(), "frames": report["frames"],
        "result_s_median": {k: median(v) for k, v in times.items()},
        "exit_s_median": {k: median(v) for k, v in walls.items()},
        "ray_over_driver": median(a / b for a, b in zip(times["ray"], times["driver"])),
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


@bench("nodes", RUNS, arg("--nodes", type=int, nargs="+", default=[1, 2, 3]),
       help="whole renders on local Ray clusters of several worker nodes", overrides=DEMO)
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
                                           *first_render(run_dir)], capture_output=True, text=True)
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
        **{f"{n} node(s)": {"wall_s_median": median(walls[n]), "wall_s_all": [round(w, 2) for w in walls[n]],
                            "segments_s_median": median(s["segments"] for s in stages[n]),
                            "detect_s_median": median(s["detect"] for s in stages[n])}
           for n in args.nodes},
    }
