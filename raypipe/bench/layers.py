"""`bench layers`: what layers and variants cost (issue 27's targets). Each render is a first
render through the CLI, as `bench render` measures it (an empty cache of its own, so no run
reuses another's chunks or detections), interleaved round by round, medians:

- layers: a 10 s job of 4 photos with ken_burns, with 5 layers over it (3 texts, a logo from
  start to end, a box; most of them animated in or out) against the same job without them;
- variants: the demo in 3 shapes (16:9, 9:16, 1:1 of the size asked) in one run against its
  16:9 alone, and whether its sources were detected once: the first variant's report has
  detect_s > 0, the others' 0.

Wall is seconds to the CLI's exit, start-up included; render is the render's own seconds, its
report's stages.total (the last variant's to finish, for the variants' run)."""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from raypipe.bench.common import median
from raypipe.bench.registry import RUNS, arg, bench
from raypipe.bench.renders import first_render, render_cli

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SECONDS_EACH = 2.5  # 4 photos: a 10 s video
LAYERS = (
    {"type": "text", "text": "12 Elm Street", "size": 0.07, "box": True, "position": "bottom_left",
     "start": 1.2, "length": 3.2, "in": {"type": "slide_right", "duration": 0.5},
     "out": {"type": "fade", "duration": 0.4}},
    {"type": "text", "text": "$1,250,000", "size": 0.055, "box": True, "box_color": "#c8102e",
     "position": "bottom_left", "offset": [0.0, 0.12], "start": 1.5, "length": 2.9,
     "in": {"type": "slide_up", "duration": 0.5}},
    {"type": "text", "text": "3 bed · 2 bath · 1 car", "size": 0.05, "position": "top_left", "start": 5.0,
     "length": 4.0, "in": {"type": "fade", "duration": 0.5}, "out": {"type": "wipe", "duration": 0.4}},
    {"type": "image", "source": "${asset:logo.png}", "width": 0.1, "height": 0.1, "position": "top_right",
     "opacity": 0.9},  # from start to end
    {"type": "box", "color": "#1f3a5f", "width": 1.0, "height": 0.1, "margin": 0.0, "position": "bottom",
     "start": 6.0, "in": {"type": "zoom", "duration": 0.4}},
)
TARGETS = {"layers": 1.15, "variants": 2.6}  # issue 27: the most each may cost, as a ratio of walls


@dataclass(frozen=True)
class Run:
    wall_s: float
    render_s: float
    detect_s: tuple[float, ...]  # per report: the variants' in their order
    frames: int  # every video's: the variants' summed
    detector: str


@dataclass(frozen=True)
class Case:
    """One render the bench repeats: its CLI arguments, and where its reports are under its
    run folder ("" its own, NAME a variant's)."""
    args: tuple[str, ...]
    reports: tuple[str, ...] = ("",)

    def run(self, run_dir: Path) -> Run:
        wall = render_cli([*self.args, *first_render(run_dir)], run_dir)
        reports = [json.loads((run_dir / folder / "report.json").read_text()) for folder in self.reports]
        return Run(wall, max(r["stages"]["total"] for r in reports), tuple(r["detect_s"] for r in reports),
                   sum(r["frames"] for r in reports), reports[0]["detector"])


def _job_file(path: Path, layers) -> str:
    segments = [{"source": f"sample:{p}", "duration": SECONDS_EACH, "effect": "ken_burns"} for p in PHOTOS]
    path.write_text(yaml.safe_dump({"job": {"name": path.stem, "segments": segments, "layers": list(layers)}},
                                   sort_keys=False, allow_unicode=True))
    return str(path)


def _cases(args, folder: Path) -> dict[str, Case]:
    """The two pairs, each its baseline first: at the size asked, and the variants in its three shapes."""
    size = (f"render.width={args.width}", f"render.height={args.height}", f"render.fps={args.fps}")
    shapes = {"wide": (args.width, args.height), "tall": (args.height, args.width), "square": (args.height,) * 2}
    variants = ",".join(f"{{name:{n},width:{w},height:{h}}}" for n, (w, h) in shapes.items())
    return {
        "plain": Case((_job_file(folder / "plain.yaml", ()), *size)),
        "layers": Case((_job_file(folder / "layers.yaml", LAYERS), *size)),
        "one": Case(("+job=demo", *size)),
        "variants": Case(("+job=demo", *size, f"render.variants=[{variants}]"), tuple(shapes)),
    }


PAIRS = (("plain", "layers"), ("one", "variants"))


def _summary(runs: list[Run]) -> dict:
    return {"wall_s_median": median(r.wall_s for r in runs), "wall_s_all": [round(r.wall_s, 2) for r in runs],
            "render_s_median": median(r.render_s for r in runs), "frames": runs[0].frames}


def _pair(runs: dict[str, list[Run]], base: str, other: str) -> dict:
    a, b = _summary(runs[base]), _summary(runs[other])
    ratio = round(b["wall_s_median"] / a["wall_s_median"], 3)
    return {base: a, other: b, "ratio": ratio, "render_ratio": round(b["render_s_median"] / a["render_s_median"], 3),
            "target": TARGETS[other], "within_target": ratio <= TARGETS[other]}


@bench("layers", RUNS, arg("--width", type=int, default=1280, help="the 16:9 size: the variants are also HxW and HxH"),
       arg("--height", type=int, default=720), arg("--fps", default="30"),
       help="a job with 5 layers against none, and the demo in 3 shapes in one run against one")
def bench_layers(args) -> dict:
    runs: dict[str, list[Run]] = {name: [] for pair in PAIRS for name in pair}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-layers-") as tmp:
        cases = _cases(args, Path(tmp))
        for r in range(args.runs):
            for pair in PAIRS:  # each pair's order alternates, so neither always runs after the other
                for name in pair if r % 2 == 0 else pair[::-1]:
                    run_dir = Path(tmp) / f"{name}-{r}"
                    runs[name].append(cases[name].run(run_dir))
                    shutil.rmtree(run_dir)
                    print(f"round {r}: {name} {runs[name][-1].wall_s:.2f} s wall", file=sys.stderr)
    detect = [list(r.detect_s) for r in runs["variants"]]
    result = {
        "size": f"{args.width}x{args.height}@{args.fps}", "runs": args.runs, "cpus": os.cpu_count(),
        "load_average_1min": {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)},
        "layers": {**_pair(runs, *PAIRS[0]), "layer_count": len(LAYERS)},
        "variants": {**_pair(runs, *PAIRS[1]), "detector": runs["one"][0].detector,
                     "detect_s_one": [r.detect_s[0] for r in runs["one"]], "detect_s": detect,
                     "detected_once": all(d[0] > 0 and not any(d[1:]) for d in detect)},
    }
    print(table(result), file=sys.stderr)
    return result


def table(result: dict) -> str:
    lines = [f"{result['size']}, {result['cpus']} CPUs, medians of {result['runs']} run(s), load average "
             f"{result['load_average_1min']['start']} at the start; seconds",
             f"{'render':<24} {'frames':>6} {'wall s':>7} {'render s':>8}"]
    rows = (("layers", "plain", "10 s job, no layers"), ("layers", "layers", "10 s job, 5 layers"),
            ("variants", "one", "demo, 1 shape"), ("variants", "variants", "demo, 3 shapes in one run"))
    for pair, name, label in rows:
        s = result[pair][name]
        lines.append(f"{label:<24} {s['frames']:>6} {s['wall_s_median']:>7.2f} {s['render_s_median']:>8.2f}")
    for pair in ("layers", "variants"):
        p = result[pair]
        lines.append(f"{pair}: {p['ratio']:.2f}x wall, {p['render_ratio']:.2f}x render (target <= {p['target']}x: "
                     f"{'met' if p['within_target'] else 'NOT met'})")
    v = result["variants"]
    lines.append(f"variants' detect_s per round: {v['detect_s']} ({v['detector']}): "
                 f"{'detected once' if v['detected_once'] else 'NOT detected once'}")
    return "\n".join(lines)
