"""`render.variants`: one job in several shapes. Each variant is the job at its own size (and,
where it says so, with its own layers), named after it; anchors and fractions place the layers
in any aspect, and subject-aware framing keeps faces whole in each."""
from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass

from omegaconf import DictConfig

from raypipe.config import RenderCfg
from raypipe.errors import JobError, RaypipeError
from raypipe.media import probe
from raypipe.plan import timeline
from raypipe.plan.layers import Readers, check_layers, plan_layers


def named(path: str, name: str) -> str:
    """A video's path with the variant's name before its extension: trip.mp4 -> trip-square.mp4."""
    folder, _, base = path.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    base = f"{stem}-{name}.{ext}" if dot and stem else f"{base}-{name}"
    return f"{folder}/{base}" if folder else base


@dataclass(frozen=True)
class Variant:
    """`render.variants[index]`: its name and the config that renders it."""

    index: int
    name: str
    cfg: DictConfig
    own_layers: bool  # its own `layers`, which its config holds as job.layers

    @property
    def layers_at(self) -> str:
        """Where its layers are written: its own, or the job's."""
        return f"render.variants[{self.index}].layers" if self.own_layers else "job.layers"

    def key(self, where: str) -> str:
        """A key of its config as the user wrote it: its own layers are render.variants[i].layers,
        not the job.layers its config holds them as."""
        if not (self.own_layers and where.startswith("job.layers[")):
            return where
        return self.layers_at + where[len("job.layers"):]

    def told(self, where: str) -> str:
        """A key of its video's layers as its warnings and errors name it, beside its other variants'."""
        return f"variant {self.name}: {self.key(where)}"

    def named(self, e: RaypipeError) -> RaypipeError:
        """An error of its config, under the key the user wrote."""
        return JobError(self.key(e.where), e.reason) if e.where else e


def fitted(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """A variant's (width, height) scaled to fit inside `box` (render.width x render.height set
    with variants: a small preview of every shape), its aspect kept, in even pixels."""
    scale = min(box[0] / size[0], box[1] / size[1])
    return tuple(max(2, 2 * round(side * scale / 2)) for side in size)


def variants(cfg: DictConfig) -> list[Variant]:
    """Each of `render.variants`, its name and size checked, its config made. Where the job
    sets render.width or render.height too (not the schema's 1280x720), each variant is scaled
    to fit inside that box, keeping its aspect."""
    seen: set[str] = set()
    box = (cfg.render.width, cfg.render.height)
    scaled = box != (RenderCfg.width, RenderCfg.height)
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
        one.render.width, one.render.height = fitted((v.width, v.height), box) if scaled else (v.width, v.height)
        if v.layers is not None:
            one.job.layers = v.layers
        one.job.name = f"{cfg.job.name}-{name}"
        if cfg.job.output:
            one.job.output = named(str(cfg.job.output), name)
        out.append(Variant(i, name, one, v.layers is not None))
    return out


def check_all(cfg: DictConfig, made: list[Variant]) -> None:
    """The keys of the layers that `cfg`'s videos draw (the job's, and each variant's own),
    checked reading no file: a batch's check of a row before any work."""
    if not all(v.own_layers for v in made) or not made:
        check_layers(cfg.job.layers, "job.layers", len(cfg.job.segments))
    for v in made:
        try:
            if v.own_layers:
                check_layers(v.cfg.job.layers, "job.layers", len(v.cfg.job.segments))
        except RaypipeError as e:
            raise v.named(e) from None


def plan_all(made: list[Variant]) -> None:
    """Each variant's timeline and layers planned at its size as its render will plan them
    (every video probed once for all), so that a bad one fails before any variant's work,
    under the key the user wrote."""
    probed = functools.cache(probe)
    read = Readers(functools.cache(timeline.image_size), probed)
    for v in made:
        bare = copy.deepcopy(v.cfg.job)
        bare.layers = []  # planned below, under their own path and without plan's warnings, which the render gives
        try:
            plan = timeline.plan(bare, v.cfg.render, probed, read.size)
            bounds = [s.start for s in plan.segments] + [plan.total_frames]
            plan_layers(v.cfg.job.layers, bounds, plan.encode.width, plan.encode.height, plan.encode.fps, read,
                        quiet=True)
        except RaypipeError as e:
            raise v.named(e) from None


def variant_configs(cfg: DictConfig) -> list[Variant]:
    """Each of `render.variants`, with the config that renders it, checked and planned before
    any work."""
    made = variants(cfg)
    plan_all(made)
    return made
