"""Every check a render makes before any work: a bad job fails here, with one line that
names the field or file, before a task, a model or a byte of output."""
from __future__ import annotations

import functools
import os

from omegaconf import DictConfig

from raypipe.config import cache_root
from raypipe.detection import settings as detector_settings
from raypipe.errors import JobError, MediaError
from raypipe.media import CODECS, ReadCounter, is_video, load_image, probe
from raypipe.media.audio import check_audio
from raypipe.plan import timeline
from raypipe.plan.timeline import Plan
from raypipe.storage import Storage


def prepare(cfg: DictConfig, run_root: str, reads: dict[str, ReadCounter] | None = None) -> tuple[Plan, str]:
    """Every check that needs no Ray: a bad job fails here, before any work or output.
    `reads` gets the bytes taken from storage by the planner's probes of videos ("probe")
    and by the checks of images and the soundtrack ("validate")."""
    reads = {} if reads is None else reads
    probed, checked = reads.setdefault("probe", ReadCounter()), reads.setdefault("validate", ReadCounter())
    detector_settings.validate(cfg.detector)
    if cfg.render.max_frames_per_task is not None and cfg.render.max_frames_per_task < 1:
        raise JobError("render.max_frames_per_task", f"must be >= 1 or null (got {cfg.render.max_frames_per_task})")
    if cfg.ray.segment_strategy not in ("SPREAD", "DEFAULT"):
        raise JobError("ray.segment_strategy", f"must be SPREAD or DEFAULT (got {cfg.ray.segment_strategy!r})")
    name = str(cfg.job.name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise JobError("job.name", f"must be a plain name, no path (got {name!r}); to put the video elsewhere, "
                                   "set job.output")
    # Once per file, however many segments show it: a probe decodes a file's first frame and last second.
    plan = timeline.plan(cfg.job, cfg.render, functools.cache(functools.partial(probe, counter=probed)))
    for uri in plan.sources:
        index = next(s.index for s in plan.segments if s.shot.source == uri)
        try:
            if not is_video(uri):  # videos were probed by the planner
                # Every byte decoded (a JPEG at 1/8 of its size): a missing or corrupt image fails here, not
                # in a task.
                load_image(uri, checked, at_least=1)
        except MediaError as e:
            raise JobError(f"job.segments[{index}].source", str(e)) from None
    sounds = [("job.audio.path", plan.audio.path)] if plan.audio.path else []
    sounds += [(f"job.audio.tracks[{i}].path", t.source) for i, t in enumerate(plan.audio.tracks)]
    for where, uri in sounds:
        try:
            check_audio(uri, checked)
        except MediaError as e:
            raise JobError(where, str(e)) from None
    codec = CODECS[plan.encode.codec]
    output = cfg.job.output or f"{run_root}/{plan.name}{codec.containers[0]}"
    if not output.lower().endswith(codec.containers):
        raise JobError("job.output", f"{plan.encode.codec} goes in {', '.join(codec.containers)} files (got {output})")
    if "://" not in output:
        output = os.path.abspath(output)
        _check_local_dir_writable(os.path.dirname(output))
    try:
        Storage(run_root).check_writable()
    except OSError as e:
        raise JobError("storage.root", f"cannot write to {run_root}: {str(e).splitlines()[0]}") from None
    cache_at = cache_root(cfg)
    if cfg.cache.max_gb <= 0:
        raise JobError("cache.max_gb", f"must be > 0 (got {cfg.cache.max_gb}); to render without a cache, set "
                                       "render.cache=false")
    if cache_at is not None:
        try:
            Storage(cache_at).check_writable()
        except OSError as e:
            raise JobError("cache.root", f"cannot write to {cache_at}: {str(e).splitlines()[0]}; set cache.root, "
                                         "or render.cache=false") from None
    return plan, output


def _check_local_dir_writable(folder: str) -> None:
    """job.output's folder, or the nearest one that exists (the render creates the rest),
    must be writable: found now, not after every segment has rendered. Nothing is created."""
    while not os.path.isdir(folder):
        if os.path.exists(folder):
            raise JobError("job.output", f"{folder} is a file, not a folder")
        folder = os.path.dirname(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise JobError("job.output", f"cannot write to {folder}: permission denied")
