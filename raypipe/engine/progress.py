"""Progress on the driver's terminal while a render runs: frames done of the total, frames
per second, the time left, segments done and nodes busy.

Tasks report the frames they have rendered as they go (not only when they finish), to a
`Board` actor on the driver's node; the driver reads it between its waits. On a terminal
that is a live tqdm bar; elsewhere (CI, `ray job submit` logs) a plain line every few
seconds, so that a log reader sees the render move without a flood.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections import OrderedDict

log = logging.getLogger("raypipe")

# How often a task reports its frames, and how often a plain (non-terminal) line is written.
TICK_S = 0.25
LINE_S = 5.0
ENDED_KEPT = 4096


class Board:
    """Frames rendered so far per task (keyed by its first frame), and where it runs; and the
    model loads of the run's detector actors. A Ray actor in a distributed render; a plain
    object when the driver renders alone."""

    def __init__(self):
        self.frames: dict[int, int] = {}  # task -> frames so far, until it finishes
        self.finished = 0  # the frames of finished tasks: an engine's life long, its board stays small
        self.ended: OrderedDict[int, None] = OrderedDict()  # the last tasks finished: their late ticks are dropped
        self.running: dict[int, str] = {}  # task -> node, until it finishes
        self.model_loads = 0

    def loaded(self, loads: int) -> None:
        self.model_loads += loads

    def loads(self) -> int:
        return self.model_loads

    def tick(self, task: int, frames: int, node: str) -> None:
        if task in self.ended:  # Ray orders no calls of two callers: a tick may come after its task's end
            return
        self.frames[task] = max(frames, self.frames.get(task, 0))
        self.running[task] = node

    def done(self, task: int, frames: int) -> None:
        self.frames.pop(task, None)
        self.finished += frames
        self.running.pop(task, None)
        self.ended[task] = None
        if len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)

    def snapshot(self) -> tuple[int, int]:
        """(frames rendered, nodes with a task running)."""
        return self.finished + sum(self.frames.values()), len(set(self.running.values()))


class Reporter:
    """What a task calls with its frame count; at most every TICK_S it goes to the board
    (fire and forget: a task never waits on its progress)."""

    def __init__(self, board, task: int):
        self.board, self.task, self._last, self._node = board, task, 0.0, None

    def __call__(self, frames: int) -> None:
        now = time.monotonic()
        if now - self._last < TICK_S:
            return
        self._last = now
        if self._node is None:
            import ray

            self._node = ray.get_runtime_context().get_node_id()
        self.board.tick.remote(self.task, frames, self._node)


class Progress:
    """The driver's display. `quiet`: nothing (errors and the final path only)."""

    def __init__(self, total_frames: int, tasks: int, reused_frames: int = 0, reused_tasks: int = 0,
                 quiet: bool = False, stream=None, videos: int | None = None):
        self.total, self.tasks = total_frames, tasks
        self.videos, self.videos_done = videos, 0  # a batch's videos
        self.reused_frames, self.segments_done = reused_frames, reused_tasks
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = self._line_at = time.monotonic()
        self.frames, self.busy = reused_frames, 0
        self.bar = None
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            try:  # a terminal that reports no size (a bare pty) gets a fixed one; tqdm would hide the bar
                size = os.get_terminal_size(self.stream.fileno())
                sized = size.columns > 0 and size.lines > 0
            except (OSError, ValueError):
                sized = False
            self.bar = tqdm(total=total_frames, initial=reused_frames, unit="frame", file=self.stream,
                            dynamic_ncols=sized, ncols=None if sized else 100, nrows=None if sized else 24,
                            smoothing=0.1, desc="render")

    def update(self, rendered: int, busy: int) -> None:
        """`rendered`: frames this render has made so far (cached ones aside)."""
        self.frames, self.busy = min(self.total, self.reused_frames + rendered), busy
        if self.bar is not None:
            self.bar.n = self.frames
            self.bar.set_postfix_str(f"{self._counts()}, nodes busy {busy}", refresh=False)
            self.bar.refresh()
        elif not self.quiet and time.monotonic() - self._line_at >= LINE_S:
            self._line_at = time.monotonic()
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def _counts(self) -> str:
        if self.videos is not None:
            return f"videos {self.videos_done}/{self.videos}"
        return f"tasks {self.segments_done}/{self.tasks}"

    def video_done(self, message: str) -> None:
        self.videos_done += 1
        if self.bar is None:
            log.info(message)
        else:
            self.bar.set_postfix_str(f"{self._counts()}, nodes busy {self.busy}")

    def add_video(self, frames: int, tasks: int, reused_frames: int = 0, reused_tasks: int = 0) -> None:
        """An engine learns its videos' frames and tasks as it admits them."""
        self.total += frames
        self.tasks += tasks
        self.reused_frames += reused_frames
        self.segments_done += reused_tasks
        self.frames += reused_frames
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.n = self.frames
            self.bar.refresh()

    def task_done(self, message: str) -> None:
        self.segments_done += 1
        if self.bar is None and self.videos is None:  # a batch logs a line per video instead
            log.info(message)  # a log line per task where no bar shows them moving

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        made = self.frames - self.reused_frames
        fps = made / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.frames) / fps if fps > 0 else float("nan")
        return (f"progress: {self.frames}/{self.total} frames ({100 * self.frames / max(self.total, 1):.0f}%), "
                f"{fps:.1f} fps, ETA {eta:.0f} s, {self._counts()}, nodes busy {self.busy}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
