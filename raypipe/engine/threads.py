"""The driver's own threads as an executor: no Ray, no other process. OpenCV, NumPy and the
codecs release the GIL for most of a frame, so 2 threads on 2 cores render 1.5x as fast as
one (raypipe.plan.cost.THREAD_SERIAL)."""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace

from raypipe.engine import mux
from raypipe.engine.executor import Executor, Outcome, Streamed, Work, ready
from raypipe.engine.task import render_task
from raypipe.errors import Cancelled, CancelToken


class ThreadExecutor(Executor):
    name = "threads"

    def __init__(self, slots: int, cancel: CancelToken | None = None):
        self._slots = max(1, int(slots))
        self._pool = ThreadPoolExecutor(max_workers=self._slots, thread_name_prefix="render")
        # The tasks' own token: a stop of the render reaches them through its parent, and a
        # failed task or `cancel()` stops the others at their next frame rather than at their end.
        self._token = CancelToken(parent=cancel)
        self._running: dict[Future, Work] = {}
        self._frames: dict[int, int] = {}  # work id -> frames so far, while it runs
        self._finished = 0  # frames of the works done: what it holds stays flat however many it ran
        self._videos: dict = {}  # a video's tag -> its tasks' token, while it has tasks here (`drop`)
        self._lock = threading.Lock()

    @property
    def slots(self) -> float:
        return float(self._slots)

    @property
    def idle(self) -> bool:
        return not self._running

    def submit(self, work: Work) -> None:
        own = work.detections.own if isinstance(work.detections, Streamed) else None
        if own is None or own.done():
            self._running[self._pool.submit(self._run, work)] = work
            return
        # Queued once its sources are in, not before: a thread never sits waiting for
        # detection while a later task's sources are there.
        queued = Future()
        self._running[queued] = work

        def go(_) -> None:
            if not queued.set_running_or_notify_cancel():  # cancelled meanwhile
                return
            try:
                _chain(self._pool.submit(self._run, work), queued)
            except RuntimeError as e:  # the executor closed meanwhile
                queued.set_exception(Cancelled(str(e)))

        own.add_done_callback(go)

    def _run(self, work: Work):
        def report(frames: int) -> None:
            with self._lock:
                self._frames[work.id] = frames

        m = render_task(work.task, ready(work.detections, own=True), work.encode, work.store, work.name, report=report,
                        cancel=self._token_of(work.tag), nice=work.nice)
        return replace(m, executor="driver")

    def _token_of(self, tag) -> CancelToken:
        with self._lock:
            return self._videos.setdefault(tag, CancelToken(parent=self._token))

    def drop(self, tag) -> None:
        self._token_of(tag).cancel(Cancelled("its video ended"))
        for future, work in list(self._running.items()):
            if work.tag == tag:
                future.cancel()  # one queued, not started: it comes back cancelled

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._running:
            return []
        done, _ = wait(list(self._running), timeout=timeout, return_when=FIRST_COMPLETED)
        outcomes = []
        for future in done:
            work = self._running.pop(future)
            error = future.exception() if not future.cancelled() else Cancelled("its video ended")
            outcomes.append(Outcome(work, None if error else future.result(), error))
            with self._lock:
                self._frames.pop(work.id, None)
                self._finished += 0 if error else outcomes[-1].manifest.frames
                if not any(w.tag == work.tag for w in self._running.values()):
                    self._videos.pop(work.tag, None)
        return outcomes

    def progress(self) -> tuple[int, int]:
        with self._lock:
            return self._finished + sum(self._frames.values()), 1 if self._running else 0

    def cancel(self) -> None:
        self._token.cancel(Cancelled("another task of the render failed"))
        for future in self._running:
            future.cancel()
        wait(list(self._running))
        self._running.clear()

    def muxer(self, total_frames, duration, audio, output, codec) -> mux.Muxer:
        return mux.Muxer(total_frames, duration, audio, output, codec)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _chain(inner: Future, outer: Future) -> None:
    """`outer` ends as `inner` does."""
    def copy(f: Future) -> None:
        if f.cancelled():  # by the pool's shutdown: `outer` runs, so it cannot be cancelled
            outer.set_exception(Cancelled("the render stopped"))
        elif f.exception() is not None:
            outer.set_exception(f.exception())
        else:
            outer.set_result(f.result())

    inner.add_done_callback(copy)
