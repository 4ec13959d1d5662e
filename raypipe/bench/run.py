"""Benchmarks: `python -m raypipe bench {render,batch,serve,raydata,local,nodes,compare,cache,layers,detect,clip,...}`.

Every figure is a median over rounds, and alternatives are measured interleaved in the same
run, because these machines are shared and noisy: compare ratios, not absolute numbers
taken on different days.
"""
from __future__ import annotations

import json

# Each module registers its benchmarks as it is imported.
from raypipe.bench import batch, compare, detectors, frames, layers, media, renders, serve  # noqa: F401
from raypipe.bench.registry import BENCHES, parser


def main(argv: list[str]) -> None:
    top = parser(__doc__.splitlines()[0])
    # Hydra overrides may come before or after the options; argparse takes them in one run.
    args, extra = top.parse_known_args(argv)
    bench = BENCHES[args.which]
    if extra and (bench.overrides is None or any(x.startswith("-") for x in extra)):
        top.error(f"unrecognized arguments: {' '.join(extra)}")
    if bench.overrides is not None:
        given = [*args.overrides, *extra]
        # An Editly spec is the job itself: no default job beside it.
        args.overrides = given or ([] if getattr(args, "editly", None) else list(bench.overrides.default))
    print(json.dumps(bench.run(args), indent=2))
