"""Faults survived with the same video: a worker killed mid-task, the muxer killed
mid-collection, the driver killed half-way and the command run again, and many large photos
under a small object store. (A worker node removed mid-render: tests/test_cluster.py.)"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import raypipe
from conftest import (
    ROOT,
    compose_job,
    frozen_while_titled,
    overrides,
    parent,
    read_report,
    render,
    run_cli,
    titled,
    with_test_conf,
)
from raypipe import media

pytestmark = pytest.mark.render

# Small tasks, so that there are many of them to kill in the middle of.
SPLIT = "render.max_frames_per_task=6"


def ray_processes(title: str) -> list[int]:
    """Pids of this test's Ray workers (descendants of this process: the machine may run other
    Rays) whose process title starts with `title`."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and titled(int(e), title) and ours(int(e))]


def ours(pid: int) -> bool:
    while pid not in (None, 0, 1):
        if pid == os.getpid():
            return True
        pid = parent(pid)
    return False


class Killer(threading.Thread):
    """SIGKILLs a process titled `title` once `ready()` holds, while it runs what the title says
    (frozen first, and its title read again: see conftest.frozen_while_titled)."""

    def __init__(self, title: str, ready=lambda: True):
        super().__init__(daemon=True)
        self.title, self.ready, self.killed = title, ready, None

    def run(self):
        deadline = time.monotonic() + 240
        while self.killed is None and time.monotonic() < deadline:
            for pid in ray_processes(self.title) if self.ready() else []:
                if frozen_while_titled(pid, self.title):
                    os.kill(pid, signal.SIGKILL)
                    self.killed = pid
                    break
            time.sleep(0.005)


def muxers_killer(cache_dir: Path) -> Killer:
    """Started once the clean run's muxers actor has gone: kills the next one, mid-collection
    (3 chunks in the cache)."""
    deadline = time.monotonic() + 30
    while ray_processes("ray::Muxers") and time.monotonic() < deadline:
        time.sleep(0.05)
    chunks = cache_dir / "chunks"
    killer = Killer("ray::Muxers", ready=lambda: len(list(chunks.rglob("[0-9]*.mp4"))) >= 3)
    killer.start()
    return killer


def leftovers(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if ".tmp" in p.name or p.name == "segments"]


def test_a_worker_killed_mid_task_is_run_again_and_the_video_is_unchanged(ray_local, tmp_path, cache_dir):
    clean = render(compose_job("detector=saliency", SPLIT, "render.cache=false"), str(tmp_path / "clean"))
    killer = Killer("ray::render_task")
    killer.start()
    report = render(compose_job("detector=saliency", SPLIT), str(tmp_path / "faulty"))
    killer.join()
    assert killer.killed is not None
    assert [r["reason"] for r in report["retries"]] == ["WorkerCrashedError"] and report["retries"][0]["attempt"] == 2
    assert np.array_equal(media.decode_all(report["output"]), media.decode_all(clean["output"]))
    # The killed worker's half-written chunk was swept (its writer is dead); nothing else is left.
    assert not leftovers(tmp_path, cache_dir) and report["cache"]["temp_files_swept"] <= 1


def test_the_muxer_killed_mid_collection_starts_again_and_the_video_is_unchanged(ray_local, tmp_path, cache_dir):
    clean = render(compose_job("detector=saliency", SPLIT, "render.cache=false"), str(tmp_path / "clean"))
    killer = muxers_killer(cache_dir)
    report = render(compose_job("detector=saliency", SPLIT), str(tmp_path / "faulty"))
    killer.join()
    assert killer.killed is not None and report["muxer_restarts"] == 1
    assert report["frames"] == clean["frames"]
    assert np.array_equal(media.decode_all(report["output"]), media.decode_all(clean["output"]))
    assert not leftovers(tmp_path, cache_dir)


def test_the_muxers_killed_while_two_videos_collect_start_again_and_each_video_is_unchanged(ray_local, tmp_path,
                                                                                            cache_dir):
    """A batch's videos share the engine's one muxers actor: lost with two videos collecting,
    it is made again and each video's chunks are given to it again."""
    rows = tmp_path / "rows.csv"
    rows.write_text("id,address,price,photos\n"
                    "h0,1 Elm St,$1,sample:astronaut|sample:coffee\nh1,2 Elm St,$2,sample:chelsea|sample:rocket\n")
    common = ["detector=saliency", SPLIT, "ray.min_saving_s=0", "batch.max_videos_in_flight=2", "render.width=160",
              "render.height=90", "render.fps=12"]
    clean = raypipe.render_batch("listing", rows, [*common, f"batch.root={tmp_path / 'clean'}", "render.cache=false"],
                                 run_dir=tmp_path / "clean-run")
    killer = muxers_killer(cache_dir)
    report = raypipe.render_batch("listing", rows, [*common, f"batch.root={tmp_path / 'faulty'}"],
                                  run_dir=tmp_path / "faulty-run")
    killer.join()
    assert killer.killed is not None
    assert (clean.done, report.done, report.failed, report.executor) == (2, 2, 0, "ray")
    for rid in ("h0", "h1"):
        assert np.array_equal(media.decode_all(str(tmp_path / "faulty" / "videos" / f"{rid}.mp4")),
                              media.decode_all(str(tmp_path / "clean" / "videos" / f"{rid}.mp4")))


def test_a_detector_actor_killed_in_the_call_that_loaded_its_model_has_both_loads_counted(
        ray_local, tiny_clip, tmp_path):
    """The actor dies after its load, before its result (which counted that load) is back: the
    call runs again on the actor made again, which loads again, and the count says 2 loads."""
    from raypipe.bench.batch import _photos
    from raypipe.engine.on_ray import RayExecutor

    photos = [str(tmp_path / name) for names in _photos(tmp_path, 4) for name in names]  # 16, no two alike
    cfg = compose_job("detector=clip", "detector.fallback=null", *overrides(tiny_clip))
    with RayExecutor(cfg.ray).detector_pool(cfg.detector) as pool:
        killer = Killer("ray::DetectorActor", ready=lambda: pool.loads == 1)
        killer.start()
        found, info = pool.detect(tuple(photos), tuple(cfg.job.prompts), {}, None)
        killer.join()
        assert killer.killed is not None
        assert info.clip_loads == pool.loads == 2 and info.detector.startswith("clip:")
    assert sorted(found) == sorted(photos) and all(found[p].box for p in photos)


class StopWhenWaiting(threading.Thread):
    """Stops the batch (`cancel`, as Ctrl-C does) once a detector actor waits to be placed,
    for a GPU that this Ray does not have; `at` is when, `waiting` whether it was seen waiting."""

    def __init__(self, cancel):
        super().__init__(daemon=True)
        self.cancel, self.at, self.waiting = cancel, None, False

    def run(self):
        from ray._private import state

        from raypipe.errors import Interrupted

        deadline = time.monotonic() + 240
        while not self.waiting and time.monotonic() < deadline:
            self.waiting = any(a["ActorClassName"] == "DetectorActor"
                               for a in state.actors(actor_state_name="PENDING_CREATION").values())
            time.sleep(0.05)
        self.at = time.monotonic()
        self.cancel.cancel(Interrupted(2))


def test_a_batch_stopped_while_its_detector_waits_for_a_gpu_that_never_comes_ends_at_once(
        ray_local, tiny_clip, tmp_path):
    """detector.num_gpus=1 on a Ray without one: the actor waits for it, forever. A stop (the
    API's cancel, as Ctrl-C gives) ends the batch within seconds, with no video."""
    import raypipe
    from raypipe.errors import CancelToken, Interrupted

    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(media.load_image("sample:coffee"), cv2.COLOR_RGB2BGR))
    rows = tmp_path / "rows.csv"
    rows.write_text("id,address,price,photos\nh1,1 Elm,$1,a.png\n")
    cancel = CancelToken()
    stop = StopWhenWaiting(cancel)
    stop.start()
    with pytest.raises(Interrupted):
        raypipe.render_batch("listing", rows, ["render.width=160", "render.height=90", "render.fps=10",
                                               "detector=clip", "detector.fallback=null", "detector.num_gpus=1",
                                               *overrides(tiny_clip), f"batch.root={tmp_path / 'out'}"],
                             run_dir=tmp_path / "run", cancel=cancel)
    # Stopped while the actor waited for its GPU, and ended within seconds of the stop (a loaded
    # machine may be slow to get there: the time counts from the stop).
    assert stop.waiting and time.monotonic() - stop.at < 17
    assert not list((tmp_path / "out").rglob("*.mp4"))


def test_a_driver_killed_half_way_resumes_when_the_command_runs_again(tmp_path, cache_dir, monkeypatch):
    args = ["--config-dir", "tests/conf", "+job=fixture", "detector=saliency", SPLIT, "ray.num_cpus=1"]
    # A temporary folder of this test's own (Ray's session files stay where they always are): the
    # machine's /tmp is shared with whatever else runs, other tests included.
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("RAY_TMPDIR", tempfile.gettempdir())
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    proc = subprocess.Popen([sys.executable, "-m", "raypipe", "render", *args, "ray.min_saving_s=0",
                             f"hydra.run.dir={tmp_path / 'killed'}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks, deadline = cache_dir / "chunks", time.monotonic() + 240
    while len(list(chunks.rglob("[0-9]*.mp4"))) < 11:  # of 23 tasks
        assert proc.poll() is None and time.monotonic() < deadline, "the render ended before half-way"
        time.sleep(0.02)
    proc.kill()  # SIGKILL: no handler runs, nothing is cleaned up by the driver
    proc.wait()
    done_at_kill = len(list(chunks.rglob("[0-9]*.mp4")))
    # Run again (and from scratch, for the reference) in this process: the killed driver is what needs its own.
    settings = with_test_conf("detector=saliency", SPLIT, "ray.num_cpus=1")
    raypipe.render("fixture", settings, run_dir=tmp_path / "again")
    raypipe.render("fixture", [*settings, "render.cache=false"], run_dir=tmp_path / "clean")
    report, reference = read_report(tmp_path / "again"), read_report(tmp_path / "clean")
    assert report["cache"]["chunks_reused"] >= done_at_kill - 1 >= 10
    assert report["cache"]["frames_rendered"] <= 0.6 * report["frames"]
    assert np.array_equal(media.decode_all(report["output"]), media.decode_all(reference["output"]))
    assert not leftovers(tmp_path, cache_dir)
    assert not [n for n in os.listdir(tmp) if n.startswith("raypipe")]


# 12-megapixel photos, 36 MB each decoded whole: 24 of them are ten times the 80 MiB object
# store, and two would be over the half of it that the render may put there.
PHOTOS, STORE_BYTES = 24, 80 * 1024 * 1024


def test_many_12_megapixel_photos_render_under_a_small_object_store(tmp_path):
    """In a process of its own: the object store's size is set where Ray starts."""
    photos, colours = tmp_path / "photos", []
    photos.mkdir()
    rng = np.random.default_rng(7)
    for i in range(PHOTOS):
        colour = rng.integers(30, 226, 3)
        image = np.empty((3000, 4000, 3), np.uint8)
        image[:] = colour
        cv2.circle(image, (int(rng.integers(800, 3200)), int(rng.integers(600, 2400))), 300, (255, 255, 255), -1)
        cv2.imwrite(str(photos / f"{i:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        colours.append(colour[::-1])  # written as BGR
    assert PHOTOS * image.nbytes > 10 * STORE_BYTES
    conf = tmp_path / "conf" / "job"
    conf.mkdir(parents=True)
    segments = "\n".join(f"    - {{source: {photos / f'{i:03d}.jpg'}, duration: 0.25}}" for i in range(PHOTOS))
    (conf / "many.yaml").write_text(f"# @package _global_\njob:\n  name: many\n  segments:\n{segments}\n"
                                    "render: {width: 160, height: 90, fps: 8}\n")
    done = run_cli("--config-dir", str(tmp_path / "conf"), "+job=many", "detector=saliency", "ray.min_saving_s=0",
                   f"ray.object_store_memory={STORE_BYTES}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = read_report(tmp_path / "run")
    assert report["frames"] == 2 * PHOTOS and report["ray_started"] and report["object_store_bytes"] < STORE_BYTES / 2
    frames = media.decode_all(report["output"])
    # Each photo's two frames show its own colour (the subject, white, is mostly out of the corner).
    corners = frames[:, :12, :12].reshape(PHOTOS, 2, -1, 3).mean(axis=(1, 2))
    assert np.abs(corners - np.array(colours)).max() < 12
