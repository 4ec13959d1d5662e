"""The engine takes videos as they come: from any thread, each with its own status, progress,
cancel and result; one cancelled leaves the others running; what an ended video held goes."""
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import raypipe
from conftest import ROOT, compose_job
from raypipe import media
from raypipe.engine.driver import JobVideo
from raypipe.engine.engine import Engine, EngineOptions
from raypipe.engine.threads import ThreadExecutor
from raypipe.engine.video import VideoStatus
from raypipe.storage import Storage
from test_batch import SMALL, manifest, photo

pytestmark = pytest.mark.render

# No chunk cache: each video renders its own frames (they share a timeline).
TINY = ("detector=saliency", "render.width=96", "render.height=54", "render.fps=6", "render.cache=false")


def jobs(tmp_path, n):
    """n jobs of the fixture's timeline, each to an output of its own."""
    for i in range(n):
        cfg = compose_job(*TINY, f"job.name=v{i}", f"job.output={tmp_path / 'out' / f'v{i}.mp4'}")
        yield JobVideo(cfg, str(tmp_path / 'run' / f'v{i}')), cfg


def engine_for(cfg, tmp_path, expected):
    options = EngineOptions(run_root=str(tmp_path / "run"), run_dir=str(tmp_path / "run"), expected=expected,
                            max_in_flight=2)
    return Engine(cfg, options, executor=ThreadExecutor(2))


def test_cancelling_one_video_mid_render_leaves_the_others_running(tmp_path):
    videos = list(jobs(tmp_path, 3))
    heard = []
    with engine_for(videos[0][1], tmp_path, 3) as engine:
        handles = [engine.submit(job, Storage(str(tmp_path / "run" / job.id))) for job, _ in videos]

        def cancel_once_rendering(handle):
            heard.append(handle.status)
            if handle.status is VideoStatus.RENDERING and handle.progress()[0] > 0:
                handle.cancel()

        handles[1].on_change(cancel_once_rendering)
        engine.seal()
        engine.run()
    ends = [h.result(timeout=0) for h in handles]
    assert [e.status for e in ends] == [VideoStatus.SUCCEEDED, VideoStatus.CANCELLED, VideoStatus.SUCCEEDED]
    assert VideoStatus.RENDERING in heard  # cancelled while its tasks ran, not before
    assert not (tmp_path / "out" / "v1.mp4").exists() and not (tmp_path / "run" / "v1" / "segments").exists()
    for i in (0, 2):
        assert media.count_frames(str(tmp_path / "out" / f"v{i}.mp4")) == ends[i].report.frames > 0
    assert handles[1].cancel() is False  # ended: nothing to cancel


def test_videos_submitted_from_other_threads_while_it_runs_each_end_with_its_own_result(tmp_path):
    videos = list(jobs(tmp_path, 3))
    engine = engine_for(videos[0][1], tmp_path, None)  # a service's: no count known
    handles, progress = [], {}
    loop = threading.Thread(target=engine.run)
    with engine:
        handles.append(engine.submit(videos[0][0], Storage(str(tmp_path / "run" / "v0"))))
        loop.start()
        for job, _ in videos[1:]:  # later, from this thread, while the loop runs on another
            time.sleep(0.5)
            handle = engine.submit(job, Storage(str(tmp_path / "run" / job.id)))
            handle.on_change(lambda h: progress.setdefault(h.id, []).append(h.progress()[0]))
            handles.append(handle)
        results = [h.result(timeout=300) for h in handles]
        engine.seal()
        loop.join(timeout=60)
        assert not loop.is_alive()
    assert [r.status for r in results] == [VideoStatus.SUCCEEDED] * 3
    assert len(progress) == 2 and all(seen == sorted(seen) and seen[-1] > 0 for seen in progress.values())
    assert all(Path(r.report.output).is_file() for r in results)


def test_an_engine_holds_nothing_of_the_videos_it_has_ended(tmp_path):
    videos = list(jobs(tmp_path, 3))
    with engine_for(videos[0][1], tmp_path, 3) as engine:
        for job, _ in videos:
            engine.submit(job, Storage(str(tmp_path / "run" / job.id)))
        engine.seal()
        engine.run()
        executor = engine.executor
        assert engine._flying == {} and engine._muxing == [] and engine._waiting == []
        assert executor._running == {} and executor._frames == {} and executor._videos == {}
    assert not list((tmp_path / "run").rglob("segments/*"))


def test_a_batch_whose_rows_left_cannot_be_planned_starts_no_ray(tmp_path):
    """A batch run again, with its good rows published and one whose photo is gone: the engine
    has nothing it can plan, so nothing starts."""
    folder = tmp_path / "listings"
    folder.mkdir()
    photo(folder, "a.png", "astronaut")
    (folder / "broken.png").write_bytes(b"not a png")
    rows = folder / "rows.csv"
    rows.write_text("id,address,price,photos\nelm,1 Elm St,$1,a.png\nbad,2 Bad Rd,$2,broken.png\n")
    args = [*SMALL, f"batch.root={tmp_path / 'out'}"]
    first = raypipe.render_batch("listing", rows, args, run_dir=tmp_path / "first")
    assert (first.done, first.failed) == (1, 1)
    again = raypipe.render_batch("listing", rows, args, run_dir=tmp_path / "again")
    assert (again.skipped, again.failed) == (1, 1)
    assert again.ray_started is False and again.executor == "none"


TWO_AT_ONCE = """
import sys, raypipe
rows, root, run = sys.argv[1:]
r = raypipe.render_batch("listing", rows, {small!r} + [f"batch.root={{root}}"], run_dir=run)
print(r.done, r.skipped, r.failed)
"""


def test_two_batches_into_one_root_render_each_row_once_and_lose_no_record(tmp_path):
    """Cron starts Tuesday's batch while Monday's still runs, with the same template: one waits
    for the other, renders only what it did not, and the root's manifest keeps both's records.
    The test holds the root first, so that both are surely waiting at once when it lets go."""
    from raypipe.batch.manifest import RootLock

    folder = tmp_path / "listings"
    folder.mkdir()
    for name, sample in (("a.png", "astronaut"), ("b.png", "coffee")):
        photo(folder, name, sample)
    rows = folder / "rows.csv"
    rows.write_text("id,address,price,photos\nelm,1 Elm St,$1,a.png|b.png\noak,2 Oak Ln,$2,b.png\n")
    root = tmp_path / "out"
    script = TWO_AT_ONCE.format(small=SMALL)
    with RootLock(str(root)):
        procs = [subprocess.Popen([sys.executable, "-c", script, str(rows), str(root), str(tmp_path / f"run{i}")],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
        for p in procs:  # each says once that it waits, then waits
            said = ""
            while "is in use by" not in said and p.poll() is None:
                said = p.stderr.readline()
            assert "is in use by pid" in said, said
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    counts = sorted(tuple(map(int, out.split()[-3:])) for out, _ in outs)
    assert counts == [(0, 2, 0), (2, 0, 0)]  # one rendered both rows, the other found them published
    lines = (root / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4  # every record of both batches
    assert {rid: r["status"] for rid, r in manifest(root).items()} == {"elm": "skipped", "oak": "skipped"}
