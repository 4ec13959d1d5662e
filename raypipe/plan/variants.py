"""`render.variants`: one job in several shapes. Each variant is the job at its own size (and,
where it says so, with its own layers), named after it; anchors and fractions place the layers
in any aspect, and subject-aware framing keeps faces whole in each."""
from __future__ import annotations

import copy
import os

from omegaconf import DictConfig

from raypipe.errors import JobError


def named(path: str, name: str) -> str:
    """A video's path with the variant's name before its extension: trip.mp4 -> trip-square.mp4."""
    folder, _, base = path.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    base = f"{stem}-{name}.{ext}" if dot and stem else f"{base}-{name}"
    return f"{folder}/{base}" if folder else base


def variant_configs(cfg: DictConfig) -> list[tuple[str, DictConfig]]:
    """(name, the config that renders it) for each of `render.variants`, checked."""
    seen: set[str] = set()
    out = []
    for i, v in enumerate(cfg.render.variants):
        where = f"render.variants[{i}]"
        name = str(v.name)
        if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
            raise JobError(f"{where}.name", f"must be a plain name, no path (got {name!r})")
        if name in seen:
            raise JobError(f"{where}.name", f"{name!r} names an earlier variant too")
        seen.add(name)
        for key in ("width", "height"):
            if v[key] <= 0 or v[key] % 2:
                raise JobError(f"{where}.{key}", f"must be a positive even number of pixels (got {v[key]})")
        one = copy.deepcopy(cfg)
        one.render.variants = []
        one.render.width, one.render.height = v.width, v.height
        if v.layers is not None:
            one.job.layers = v.layers
        one.job.name = f"{cfg.job.name}-{name}"
        if cfg.job.output:
            one.job.output = named(str(cfg.job.output), name)
        out.append((name, one))
    return out
