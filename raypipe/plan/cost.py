"""What tasks cost, and where they run best: the estimates that order a render's tasks
(costliest first) and split long segments, and the rule that picks the driver's threads
or Ray's workers for a job on one machine."""
from __future__ import annotations

import math
import os

from omegaconf import DictConfig

from raypipe.frames.effects import EFFECTS
from raypipe.frames.transitions import TRANSITIONS
from raypipe.plan.timeline import Plan, ShotSpec, TaskPlan, split

# Per 1080p frame on one core: the encoder (libx264 veryfast, `bench media`) and decoding a
# video source's frame, for estimating what a task costs.
ENCODE_MS = 28.0
DECODE_MS = 6.0


def _shot_ms(shot: ShotSpec) -> float:
    effect = EFFECTS[shot.effect]
    return effect.frame_ms + (effect.setup_ms + DECODE_MS if shot.clip else 0.0)


def estimated_ms(task: TaskPlan) -> float:
    """CPU time a task should take at 1080p, for ordering (costliest first), not for promises:
    a video decodes and rebuilds its pyramids every frame, a still only once."""
    seg = task.segment
    main = _shot_ms(seg.shot)
    ms = main * task.frames + (0.0 if seg.shot.clip else EFFECTS[seg.shot.effect].setup_ms) + ENCODE_MS * task.frames
    tr = seg.transition
    if tr is not None:
        overlap = max(0, task.end - max(tr.start, task.start))
        ms += overlap * (_shot_ms(tr.into) + TRANSITIONS[tr.kind].blend_ms)
    return ms


# Tasks per CPU when long segments are split: enough that the last ones to finish are short
# (a tail of at most ~1/3 of a task per CPU), few enough that per-task start-up stays small.
TASKS_PER_CPU = 3
# The fewest frames a split task gets (Remotion Lambda's floor too): a task's fixed cost
# (~0.1 s: scheduling, opening its sources, the first frame's pyramids, the encoder's start
# and the chunk's upload) stays around a tenth of its work at ~50 ms a 1080p frame.
MIN_TASK_FRAMES = 20


def frames_per_task(plan: Plan, cfg: DictConfig, slots: float) -> int:
    """The most frames a task gets: render.max_frames_per_task, or by default about
    TASKS_PER_CPU tasks for every task slot the cluster has."""
    return cfg.render.max_frames_per_task or max(
        MIN_TASK_FRAMES, math.ceil(plan.total_frames / (TASKS_PER_CPU * max(1.0, slots))))


def ordered_tasks(plan: Plan, max_frames: int) -> list[TaskPlan]:
    """The render's tasks, segments longer than `max_frames` split, costliest first (a long or
    video-decoding task started last would set the finish time)."""
    return sorted(split(plan, max_frames), key=lambda t: -estimated_ms(t))


# CPUs that an embedded Ray's own processes (raylet, GCS, the driver's detection and the
# head-start task, the muxer and progress actors) take from its workers: on 2 cores the
# demo's tasks took 8.2 s of worker time where one process takes 5.5 s.
RAY_OVERHEAD_CPUS = 0.6
# The share of a frame's work that does not overlap across the driver's threads (the GIL,
# memory bandwidth): 2 threads on 2 cores render the demo and one_long 1.5x as fast as one,
# which is Amdahl's law with this serial share (measured on 2 cores only).
THREAD_SERIAL = 0.34


def local_slots(rc: DictConfig) -> float:
    """Tasks this machine runs side by side (`rc`: the ray section): an embedded Ray's
    workers, or the driver's threads."""
    return (rc.num_cpus or os.cpu_count() or 1) / rc.segment_cpus


def worth_starting_ray(tasks: list[TaskPlan], enc, slots: float, min_saving_s: float) -> bool:
    """Whether an embedded Ray would finish sooner than the driver alone. The driver renders
    on `slots` threads (bounded by THREAD_SERIAL), Ray on `slots` worker processes (less what
    its own processes take); the difference must beat what Ray's start costs (`ray_start` in
    report.json: 3 to 4 s on 2 cores). On 2 cores the driver is always as fast; on 16, Ray
    pays from about 25 s of estimated work."""
    if not tasks or min_saving_s <= 0:
        return bool(tasks)
    pixels = enc.width * enc.height / (1920 * 1080)  # the estimates are for 1080p frames
    work = sum(estimated_ms(t) for t in tasks) * pixels / 1000
    here = work * (THREAD_SERIAL + (1 - THREAD_SERIAL) / max(1.0, slots))
    on_ray = work / max(1.0, slots - RAY_OVERHEAD_CPUS)
    return len(tasks) > 1 and here - on_ray > min_saving_s
