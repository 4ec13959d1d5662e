"""Where an engine's tasks run: the driver's threads where Ray would not finish sooner
(raypipe.plan.cost), else Ray: always on a cluster, and for a detector that needs a GPU. One
render on Ray, with a detector that loads no model here, has the driver's thread render the
first task while Ray starts (the head start)."""
from __future__ import annotations

from omegaconf import DictConfig

from raypipe.detection import detector
from raypipe.engine.cache import Reuse
from raypipe.engine.executor import Executor
from raypipe.engine.headstart import HeadStart
from raypipe.engine.on_ray import RayExecutor
from raypipe.engine.ray_start import embedded
from raypipe.engine.threads import ThreadExecutor
from raypipe.engine.video import VideoRun
from raypipe.errors import CancelToken
from raypipe.plan.cost import frames_per_task, local_slots, ordered_tasks, worth_starting_ray
from raypipe.plan.timeline import TaskPlan


def choose(cfg: DictConfig, first: VideoRun, expected: int | None, cancel: CancelToken,
           given: Executor | None = None) -> tuple[Executor, list[TaskPlan] | None]:
    """The executor for the engine's work, judged on its first video's tasks as many times as
    `expected` videos (None: a service, for which Ray pays), or the one `given`; and those
    tasks, where known."""
    slots = local_slots(cfg.ray) if embedded(cfg.ray) else None  # a cluster's are known once Ray is up
    tasks = None
    with first.stages("cache_lookup"):
        first.reuse = Reuse.look_up(first.cfg, first.plan, first.store)
        if slots:
            tasks, _ = first.reuse.pending(ordered_tasks(first.plan, frames_per_task(first.plan, first.cfg, slots)))
    if given is not None:
        return given, tasks
    if tasks is not None and expected is not None and cfg.detector.num_gpus == 0 and not worth_starting_ray(
            tasks * expected, first.plan.encode, slots, cfg.ray.min_saving_s):
        return ThreadExecutor(max(1, min(int(slots), len(tasks) * expected or 1)), cancel), tasks
    ray = RayExecutor(cfg.ray, first.stages)
    if expected == 1 and slots and detector.resolve_kind(cfg.detector)[0] != "clip":
        # A driver that loads a model holds its memory: then the rendering is left to Ray.
        return HeadStart(ThreadExecutor(1, cancel), ray), tasks
    return ray, tasks
