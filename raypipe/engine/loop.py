"""The task loop, written once for every executor: submit, collect each outcome as it
completes, run again what a lost worker took with it, feed the muxer, show progress, and
on any error or stop cancel what is in flight before the caller removes its files."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from raypipe.engine.executor import Executor, TaskLost, Work
from raypipe.engine.progress import Progress
from raypipe.engine.task import SegmentManifest
from raypipe.errors import CancelToken, RenderError

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


class Feed:
    """Where the loop's work comes from. `take(n)` returns up to n works ready now, never
    waiting; `more` says whether any may still come (a batch's videos not yet detected)."""

    def __init__(self, works: Iterable[Work]):
        self._works = list(works)

    def take(self, n: int | None) -> list[Work]:
        taken, self._works = (self._works, []) if n is None else (self._works[:n], self._works[n:])
        return taken

    @property
    def more(self) -> bool:
        return bool(self._works)


def run_tasks(executor: Executor, works: Iterable[Work] | Feed, on_done: Callable[[Work, SegmentManifest], None],
              progress: Progress, cancel: CancelToken, window: int | None = None, attempts: int = ATTEMPTS,
              on_error: Callable[[Work, BaseException], bool] | None = None,
              wanted: Callable[[Work], bool] | None = None,
              on_retry: Callable[[Work, dict], None] | None = None) -> Runs:
    """Runs every work to its manifest; `on_done(work, manifest)` hears each as it completes.
    At most `window` works are in flight (None: all that are ready). A task's own error ends
    the loop, unless `on_error(work, error)` takes it (a batch records its row and goes on).
    A lost work that is no longer `wanted` (its video failed) is not run again; `on_retry(work,
    entry)` hears each one that is."""
    feed = works if isinstance(works, Feed) else Feed(works)
    runs, in_flight = Runs(), 0

    def top_up() -> None:
        nonlocal in_flight
        for work in feed.take(None if window is None else window - in_flight):
            executor.submit(work)
            in_flight += 1

    try:
        top_up()
        executor.start()  # after the first works: the driver's thread renders one while Ray starts
        while in_flight or feed.more:
            cancel.check()  # a signal reaches the main thread; the tasks stop at their next frame
            if not in_flight:
                time.sleep(POLL_S)  # nothing to wait on until the feed has more
            for outcome in executor.wait(POLL_S):
                in_flight -= 1
                work = outcome.work
                error = outcome.error
                if isinstance(error, TaskLost):
                    task = work.task
                    if wanted is not None and not wanted(work):
                        continue
                    if work.attempt < attempts:
                        log.warning("segment %d, frames %d-%d: lost (%s); running it again", task.segment.index,
                                    task.start, task.end - 1, error.reason)
                        entry = {"start": task.start, "frames": task.frames, "attempt": work.attempt + 1,
                                 "reason": error.kind}
                        runs.retries.append(entry)
                        if on_retry is not None:
                            on_retry(work, entry)
                        executor.submit(replace(work, attempt=work.attempt + 1))
                        in_flight += 1
                        continue
                    # Lost every time: most likely its own doing (a source that crashes the decoder,
                    # a frame too big for the node), so its error, which a batch's row can take.
                    error = RenderError(f"segment {task.segment.index}, frames {task.start}-{task.end - 1}: "
                                        f"lost {attempts} times ({error.reason})")
                if error is not None:
                    if on_error is not None and on_error(work, error):
                        continue
                    raise error
                runs.manifests.append(outcome.manifest)
                on_done(work, outcome.manifest)
                progress.task_done(done_line(outcome.manifest))
            top_up()
            progress.update(*executor.progress())
    except BaseException:
        executor.cancel()
        raise
    return runs
