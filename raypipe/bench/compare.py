"""`python -m raypipe bench compare +job=NAME [--runs N]`: one job four ways, side by side.

- raypipe: the CLI render on an embedded Ray (`python -m raypipe render`).
- sequential: the same renderer in one process without Ray: plan, detect, each segment in
  turn (its encoder on its own thread, as in a task), then the muxer.
- pool and moviepy: the yardsticks in raypipe.bench.baseline (the design raypipe replaced, and
  the timeline as a plain MoviePy program).
- editly: with `--editly SPEC`, an Editly spec rendered by Editly's CLI and by raypipe's
  (raypipe.bench.editly); skipped, with one line, where Editly is not installed.

Each run is a fresh process, timed from its start to its printed result and to its exit, so no import or memory
carries over. Rounds run every variant once, in turn, after a warm-up round that is not
counted. Memory is that of every process of the run, from the kernel's own accounting.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

from raypipe.api import compose, config
from raypipe.bench import editly
from raypipe.bench.baseline import run_moviepy, run_pool
from raypipe.bench.registry import DEMO, arg, bench
from raypipe.media import count_frames

NAMES = ("raypipe", "sequential", "pool", "moviepy", "editly")
JOB_VARIANTS = NAMES[:4]  # of a job; an Editly spec is rendered by raypipe and editly
POLL_S = 0.1


# ---- sequential: raypipe's renderer in one process, no Ray ---------------------------------


def run_sequential(cfg, run_dir: str) -> dict:
    """raypipe's engine in one process on one thread, a task per segment, no cache: what the
    renderer does with nothing to share the work with."""
    from raypipe.engine.driver import render
    from raypipe.engine.threads import ThreadExecutor

    cfg = cfg.copy()
    cfg.render.cache, cfg.render.max_frames_per_task = False, 2**31 - 1
    report = render(cfg, run_dir, quiet=True, executor=ThreadExecutor(1)).report
    return {"frames": report.frames, "clip_loads": report.clip_loads, "stages": report.stages, "output": report.output}


VARIANTS = {"sequential": run_sequential, "pool": run_pool, "moviepy": run_moviepy}


# ---- measuring a run: wall time and the memory of its whole process tree -------------------


def _become_subreaper() -> None:
    """Make this process inherit the orphans of its descendants (a Ray worker whose raylet
    exited, a daemonized helper), so that they stay in the measured tree, not under init."""
    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # it exited meanwhile
        pass
    return None


def _reap() -> None:
    with suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


class ProcessTree:
    """Peak RSS of every process below this one: the kernel's own high-water mark (VmHWM),
    polled from /proc every POLL_S seconds. A process that lives less than that is missed."""

    def __init__(self):
        self.peaks: dict[tuple[int, bytes], int] = {}  # (pid, start time) -> kB

    def sample(self) -> list[int]:
        """Updates the peaks; returns the live descendants."""
        children: dict[int, list[int]] = {}
        state: dict[int, tuple[bytes, bytes]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2:].split()  # from field 3 on: state, ppid, ...
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            state[pid] = (fields[0], fields[19])  # state, start time (fields 3 and 22)
        live, todo = [], list(children.get(os.getpid(), ()))
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, ()))
            status, started = state[pid]
            hwm = None if status == b"Z" else _vm_hwm_kb(pid)
            if hwm is not None:
                live.append(pid)
                self.peaks[pid, started] = max(self.peaks.get((pid, started), 0), hwm)
        return live

    def run(self, cmd: list[str], **popen) -> tuple[float, float, int]:
        """Runs cmd; returns the seconds to its last line on stdout (its result: the video's
        path, printed once the video is published) and to its exit, and its exit code.
        Processes that outlive it (Ray's workers exit after their raylet) are measured until
        they exit."""
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, **popen)
        printed = [None]

        def watch() -> None:
            for _ in proc.stdout:
                printed[0] = time.perf_counter() - t0

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        while True:
            self.sample()
            try:
                code = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
        wall = time.perf_counter() - t0
        watcher.join()
        deadline = time.monotonic() + 30
        while live := self.sample():
            if time.monotonic() > deadline:  # a straggler must not spill into the next run
                for pid in live:
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            _reap()
            time.sleep(POLL_S)
        _reap()
        return printed[0] or wall, wall, code


# ---- the benchmark ------------------------------------------------------------------------


def _run(variant: str, run_dir: str, overrides: list[str]) -> dict:
    os.makedirs(run_dir)
    if variant == "editly":
        cmd = [*editly.command(), "--json", overrides[0], "--out", f"{run_dir}/editly.mp4"]
    elif variant == "raypipe":
        # An empty cache: a first render, as the other variants make (they have no cache).
        cmd = [sys.executable, "-m", "raypipe", "render", *overrides, f"hydra.run.dir={run_dir}",
               f"cache.root={run_dir}/cache"]
    else:
        cmd = [sys.executable, "-m", "raypipe.bench.compare", variant, run_dir, *overrides]
    tree = ProcessTree()
    err_path = os.path.join(run_dir, "stderr.txt")
    with open(err_path, "w") as err:
        to_result, wall, code = tree.run(cmd, stderr=err)
    if code != 0:
        tail = "\n".join(Path(err_path).read_text().strip().splitlines()[-15:])
        sys.exit(f"error: {variant} failed (exit {code}); the end of its stderr:\n{tail}")
    if variant == "editly":  # it writes no report: its frames are counted in its video
        result = {"frames": count_frames(f"{run_dir}/editly.mp4"), "clip_loads": 0, "stages": {}}
    else:
        result = json.loads(Path(run_dir, "report.json" if variant == "raypipe" else "result.json").read_text())
    peaks = tree.peaks.values()
    return {"result_s": to_result, "exit_s": wall, "frames": result["frames"], "clip_loads": result["clip_loads"],
            "stages": result["stages"],
            "peak_rss_mb": max(peaks) / 1024, "sum_rss_mb": sum(peaks) / 1024,
            "not_expressed": result.get("not_expressed", [])}


def _summary(runs: list[dict], frames: int) -> dict:
    walls = [r["result_s"] for r in runs]
    median = statistics.median(walls)
    return {
        "median_s": round(median, 2), "min_s": round(min(walls), 2), "max_s": round(max(walls), 2),
        "exit_median_s": round(statistics.median(r["exit_s"] for r in runs), 2),
        "fps": round(frames / median, 1), "frames": runs[0]["frames"],
        "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs)),
        "sum_rss_mb": round(statistics.median(r["sum_rss_mb"] for r in runs)),
        "clip_loads": max(r["clip_loads"] for r in runs),  # the most any run loaded
        "stages": {k: round(statistics.median(r["stages"][k] for r in runs), 2) for k in runs[0]["stages"]},
    }


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {value})")
    return int(value)


def _variant_list(value: str) -> list[str]:
    names = value.split(",")
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(NAMES)})")
    return names


def _editly_variants(args, tmp: str) -> None:
    """With --editly: the spec written where Editly reads it, first among the overrides, and
    Editly dropped from the variants, with one line, where it is not installed."""
    if set(args.variants) - {"raypipe", "editly"}:
        sys.exit("error: --editly compares raypipe and editly only (--variants raypipe,editly)")
    args.overrides = [str(editly.materialised(Path(args.editly), Path(tmp))), *args.overrides]
    if "editly" in args.variants and editly.command() is None:
        print("editly: not installed (node and node_modules/editly/cli.js, or $RAYPIPE_EDITLY_CLI): skipped",
              file=sys.stderr)
        args.variants = [v for v in args.variants if v != "editly"]


@bench("compare",
       arg("--runs", type=_positive, default=3, help="counted rounds, after one warm-up round (default: 3)"),
       arg("--out", default="bench.json", help="where the results go (default: ./bench.json)"),
       arg("--variants", type=_variant_list, default=None,
           help=f"comma-separated, of {','.join(NAMES)} (default: all but editly; with --editly, raypipe,editly)"),
       arg("--editly", metavar="SPEC", default=None,
           help="an Editly spec, rendered by Editly (where installed) and by raypipe"),
       help="one job through raypipe, one process, a multiprocessing pool and MoviePy", overrides=DEMO)
def compare(args) -> dict:
    if args.variants is None:
        args.variants = ["raypipe", "editly"] if args.editly else list(JOB_VARIANTS)
    with tempfile.TemporaryDirectory(prefix="raypipe-compare-") as tmp:
        if args.editly:
            _editly_variants(args, tmp)
        return _compare(args, tmp)


def _compare(args, tmp: str) -> dict:
    # A bad override fails here, before any run.
    cfg = config(args.overrides[0], args.overrides[1:]) if args.editly else compose(args.overrides)
    if not cfg.job.segments:
        sys.exit("error: no job selected: pass +job=NAME")
    if cfg.render.codec != "h264":
        sys.exit(f"error: bench compare measures h264 renders, as MoviePy writes them (got {cfg.render.codec})")
    _become_subreaper()
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    for r in range(args.runs + 1):
        for variant in args.variants:
            run_dir = os.path.join(tmp, f"{variant}-{r}")
            run = _run(variant, run_dir, args.overrides)
            shutil.rmtree(run_dir)
            print(f"{f'round {r}/{args.runs}' if r else 'warm-up'}: {variant} {run['result_s']:.2f} s to the "
                  f"result, {run['exit_s']:.2f} s to exit", file=sys.stderr)
            if r:
                runs[variant].append(run)
    frames = next(iter(runs.values()))[0]["frames"]
    variants = {v: _summary(rs, frames) for v, rs in runs.items()}
    base = variants.get("raypipe")
    result = {
        "job": cfg.job.name, "frames": frames, "cpus": os.cpu_count(), "variants": variants,
        "ratios": {v: round(variants[v]["median_s"] / base["median_s"], 2) if base and v in variants else None
                   for v in NAMES[1:]},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    not_expressed = runs["moviepy"][0]["not_expressed"] if "moviepy" in runs else []
    print(table(result, args.runs, not_expressed), file=sys.stderr)
    return result


def table(result: dict, runs: int, not_expressed: list[str]) -> str:
    lines = [f"{result['job']}: {result['frames']} frames, {result['cpus']} CPUs, medians of {runs} run(s) "
             "after a warm-up; seconds from start-up to the printed result (exit: to the process's exit)",
             f"{'variant':<11} {'median s':>8} {'min s':>7} {'max s':>7} {'exit s':>7} {'fps':>6} {'/raypipe':>8} "
             f"{'peak RSS MB':>11} {'sum RSS MB':>10} {'CLIP loads':>10}"]
    for name, v in result["variants"].items():
        ratio = result["ratios"].get(name) if name != "raypipe" else 1.0
        lines.append(f"{name:<11} {v['median_s']:>8.2f} {v['min_s']:>7.2f} {v['max_s']:>7.2f} "
                     f"{v['exit_median_s']:>7.2f} {v['fps']:>6.1f} "
                     f"{'-' if ratio is None else f'{ratio:.2f}x':>8} {v['peak_rss_mb']:>11} {v['sum_rss_mb']:>10} "
                     f"{v['clip_loads']:>10}")
    lines.append("stages (medians, s):")
    for name, v in result["variants"].items():
        lines.append(f"  {name:<11} " + "  ".join(f"{k} {s:.2f}" for k, s in v["stages"].items()))
    if not_expressed:
        lines.append("moviepy: what MoviePy cannot express, and what it shows instead:")
        lines += [f"  - {item}" for item in not_expressed]
    return "\n".join(lines)


if __name__ == "__main__":  # one run of a variant, in its own process: VARIANT RUN_DIR OVERRIDES...
    variant, run_dir, *overrides = sys.argv[1:]
    result = VARIANTS[variant](compose(overrides), run_dir)
    Path(run_dir, "result.json").write_text(json.dumps(result))
    print(result["output"], flush=True)  # as the CLI does: the moment the result is there
