"""The one task loop, on an executor whose workers die as Ray's do: a task lost now and then
runs again; one lost on every attempt is its own failure, which a batch's row takes."""
from types import SimpleNamespace

import pytest

from raypipe.engine.executor import Executor, Outcome, TaskLost, Work
from raypipe.engine.loop import ATTEMPTS, run_tasks
from raypipe.engine.progress import Progress
from raypipe.errors import CancelToken, RenderError

pytestmark = pytest.mark.unit


class DyingWorkers(Executor):
    """Ends each work at once: those tagged "crash" lose their worker every time, those tagged
    "flaky" on their first attempt only; the others are done."""

    name = "dying"

    def __init__(self):
        self.submitted, self.ready = [], []

    @property
    def slots(self) -> float:
        return 2.0

    def submit(self, work: Work) -> None:
        self.submitted.append(work)
        lost = work.tag == "crash" or (work.tag == "flaky" and work.attempt == 1)
        self.ready.append(Outcome(work, error=TaskLost("WorkerCrashedError", "the worker died"))
                          if lost else Outcome(work, manifest=SimpleNamespace(frames=work.task.frames)))

    def wait(self, timeout: float) -> list[Outcome]:
        ready, self.ready = self.ready, []
        return ready

    def progress(self) -> tuple[int, int]:
        return 0, 0

    def cancel(self) -> None:
        self.ready = []

    def muxer(self, *args):
        raise NotImplementedError


def work(i: int, tag: str) -> Work:
    task = SimpleNamespace(segment=SimpleNamespace(index=i), start=10 * i, end=10 * i + 10, frames=10)
    return Work(i, task, None, None, None, f"{i}.mp4", tag=tag)


def test_a_task_lost_on_every_attempt_is_its_rows_error_and_the_other_rows_go_on(monkeypatch):
    monkeypatch.setattr("raypipe.engine.loop.done_line", lambda m: "")
    executor, done, failed = DyingWorkers(), [], []
    runs = run_tasks(executor, [work(0, "ok"), work(1, "crash"), work(2, "flaky"), work(3, "ok")],
                     lambda w, m: done.append(w.id), Progress(40, 4, quiet=True), CancelToken(),
                     on_error=lambda w, e: failed.append((w.id, e)) or True)
    assert sorted(done) == [0, 2, 3]
    assert [(i, type(e), str(e)) for i, e in failed] == [
        (1, RenderError, f"segment 1, frames 10-19: lost {ATTEMPTS} times (the worker died)")]
    assert [w.attempt for w in executor.submitted if w.id == 1] == list(range(1, ATTEMPTS + 1))
    assert sorted(r["start"] for r in runs.retries) == [10] * (ATTEMPTS - 1) + [20]


def test_without_a_taker_a_task_lost_on_every_attempt_ends_the_loop():
    with pytest.raises(RenderError, match=f"lost {ATTEMPTS} times"):
        run_tasks(DyingWorkers(), [work(1, "crash")], lambda w, m: None, Progress(10, 1, quiet=True), CancelToken())


def test_a_lost_task_of_a_row_that_has_failed_is_not_run_again(monkeypatch):
    monkeypatch.setattr("raypipe.engine.loop.done_line", lambda m: "")
    executor, done = DyingWorkers(), []
    runs = run_tasks(executor, [work(0, "flaky"), work(1, "ok")], lambda w, m: done.append(w.id),
                     Progress(20, 2, quiet=True), CancelToken(), wanted=lambda w: w.id != 0)
    assert done == [1] and [w.id for w in executor.submitted] == [0, 1] and not runs.retries


def test_a_tasks_niceness_is_raised_for_its_thread_alone_and_never_lowered():
    """What a service's renders do on the driver's threads and Ray's workers: the thread that
    renders (and what it starts) yields the CPU; the others keep theirs."""
    import os
    import threading

    from raypipe.engine.task import lower_priority

    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before, seen = niceness(), []

    def render():
        lower_priority(before + 4)
        seen.append(niceness())
        lower_priority(before + 2)  # a lower niceness would need a privilege: left as it is
        seen.append(niceness())
        child = threading.Thread(target=lambda: seen.append(niceness()))
        child.start()
        child.join()

    thread = threading.Thread(target=render)
    thread.start()
    thread.join()
    assert seen == [before + 4] * 3 and niceness() == before
