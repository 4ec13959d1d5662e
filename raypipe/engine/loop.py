"""The task loop, written once for every executor: submit, collect each outcome as it
completes, run again what a lost worker took with it, feed the muxer, show progress, and
on any error or stop cancel what is in flight before the caller removes its files."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from raypipe.errors import CancelToken, RenderError
from raypipe.engine.executor import Executor, TaskLost, Work
from raypipe.engine.progress import Progress
from raypipe.engine.task import SegmentManifest

log = logging.getLogger("raypipe")

# Attempts for a task whose worker or node was lost (a system failure; our own errors are
# never retried): each attempt writes the same chunk name, atomically.
ATTEMPTS = 4
POLL_S = 0.2


@dataclass
class Runs:
    manifests: list[SegmentManifest] = field(default_factory=list)
    retries: list[dict] = field(default_factory=list)  # {"start", "frames", "attempt", "reason"} per re-run


def done_line(m: SegmentManifest) -> str:
    return (f"segment {m.index}, frames {m.start}-{m.start + m.frames - 1}: {m.seconds:.1f} s on node "
            f"{m.node_id[:8] if m.executor == 'ray' else 'driver'}")


def run_tasks(executor: Executor, works: Iterable[Work], on_done: Callable[[Work, SegmentManifest], None],
              progress: Progress, cancel: CancelToken, window: int | None = None,
              attempts: int = ATTEMPTS) -> Runs:
    """Runs every work to its manifest; `on_done(work, manifest)` hears each as it completes.
    At most `window` works are in flight (None: all are submitted at once), so that works
    made lazily by `works` (a batch's videos) are made only as the executor can take them."""
    runs, queue, in_flight = Runs(), iter(works), 0

    def top_up() -> None:
        nonlocal in_flight
        while window is None or in_flight < window:
            work = next(queue, None)
            if work is None:
                return
            executor.submit(work)
            in_flight += 1

    try:
        top_up()
        executor.start()  # after the first works: the driver's thread renders one while Ray starts
        while in_flight:
            cancel.check()  # a signal reaches the main thread; the tasks stop at their next frame
            for outcome in executor.wait(POLL_S):
                in_flight -= 1
                work = outcome.work
                if isinstance(outcome.error, TaskLost):
                    task = work.task
                    if work.attempt >= attempts:
                        raise RenderError(f"segment {task.segment.index}, frames {task.start}-{task.end - 1}: lost "
                                          f"{attempts} times ({outcome.error.reason})") from None
                    log.warning("segment %d, frames %d-%d: lost (%s); running it again", task.segment.index,
                                task.start, task.end - 1, outcome.error.reason)
                    runs.retries.append({"start": task.start, "frames": task.frames, "attempt": work.attempt + 1,
                                         "reason": outcome.error.kind})
                    executor.submit(replace(work, attempt=work.attempt + 1))
                    in_flight += 1
                    continue
                if outcome.error is not None:
                    raise outcome.error
                runs.manifests.append(outcome.manifest)
                on_done(work, outcome.manifest)
                progress.task_done(done_line(outcome.manifest))
            top_up()
            progress.update(*executor.progress())
    except BaseException:
        executor.cancel()
        raise
    return runs
