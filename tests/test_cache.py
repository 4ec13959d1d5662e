"""The caches: a re-render makes only what changed, detections load no model twice, entries
survive concurrent writers and torn files, and the cache stays within its bound."""
import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from omegaconf import OmegaConf

import raypipe
from conftest import compose_job, overrides, read_report, render, render_error, run_cli, with_test_conf
from raypipe import media
from raypipe.detection import cache
from raypipe.detection.detector import detect_all
from raypipe.engine.cache import Reuse, evict
from raypipe.plan.validate import prepare
from raypipe.storage import HOST, Storage, temp_name

FIXTURE = ("--config-dir", "tests/conf", "+job=fixture", "detector=saliency")


def md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.mark.render
def test_an_unchanged_job_renders_nothing_again_and_starts_no_ray(tmp_path):
    first = run_cli(*FIXTURE, "ray.min_saving_s=0", f"hydra.run.dir={tmp_path / 'first'}")  # on Ray, however small
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_cli(*FIXTURE, "ray.min_saving_s=0", f"hydra.run.dir={tmp_path / 'second'}")
    assert second.returncode == 0, second.stderr[-2000:]
    a, b = read_report(tmp_path / "first"), read_report(tmp_path / "second")
    assert a["cache"]["chunks_reused"] == 0 and a["cache"]["frames_rendered"] == a["frames"]
    assert b["cache"]["chunks_reused"] == b["chunks"] == a["tasks"] and b["cache"]["frames_rendered"] == 0
    assert b["tasks"] == 0  # reused chunks are not tasks
    assert all(r["reused"] for r in b["segment_runs"])
    assert b["cache"]["detections_reused"] == len(b["detections"]) == 5
    assert "ray_start" not in b["stages"] and b["stages"]["segments"] < 0.01
    # Same chunks, same sound: the same file, byte for byte, at its own run's path.
    assert b["output"] == str(tmp_path / "second" / "fixture.mp4") and md5(a["output"]) == md5(b["output"])
    assert a["ray_started"] and not b["ray_started"]
    # An edit this small renders its one segment in the driver: Ray would start slower than that.
    third = run_cli(*FIXTURE, "job.segments.3.caption.text=Edited", f"hydra.run.dir={tmp_path / 'third'}")
    assert third.returncode == 0, third.stderr[-2000:]
    c = read_report(tmp_path / "third")
    assert not c["ray_started"] and {r["index"] for r in c["segment_runs"] if not r["reused"]} == {3}
    assert c["frames_rendered_by_the_driver"] == c["cache"]["frames_rendered"] > 0


@pytest.mark.render
def test_editing_one_caption_re_renders_only_that_segment(ray_local, tmp_path):
    first = render(compose_job("detector=saliency"), str(tmp_path / "first"))
    edit = "job.segments.3.caption.text=Edited"
    edited = render(compose_job("detector=saliency", edit), str(tmp_path / "edited"))
    clean = render(compose_job("detector=saliency", edit, "render.cache=false"), str(tmp_path / "clean"))
    seg3 = [r for r in first["segment_runs"] if r["index"] == 3]
    fresh = [r for r in edited["segment_runs"] if not r["reused"]]
    assert {r["index"] for r in fresh} == {3} and edited["cache"]["frames_rendered"] == sum(r["frames"] for r in seg3)
    assert clean["cache"] == {"enabled": False} and not any(r["reused"] for r in clean["segment_runs"])
    # Reused chunks and the re-rendered one make the video a render from scratch makes.
    video, reference, before = (media.decode_all(r["output"]) for r in (edited, clean, first))
    assert np.array_equal(video, reference)
    lo, hi = seg3[0]["start"], seg3[-1]["start"] + seg3[-1]["frames"]
    assert not np.array_equal(video[lo:hi], before[lo:hi]) and np.array_equal(video[:lo], before[:lo])


@pytest.mark.render
def test_cached_detections_load_no_model_and_import_no_torch(tiny_clip, tmp_path):
    clip = ("--config-dir", "tests/conf", "+job=fixture", *overrides(tiny_clip))
    first = run_cli(*clip, f"hydra.run.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stderr[-2000:]
    # Another quality: every chunk is new, every detection is not.
    second = run_cli(*clip, "render.crf=24", f"hydra.run.dir={tmp_path / 'second'}")
    assert second.returncode == 0, second.stderr[-2000:]
    a, b = read_report(tmp_path / "first"), read_report(tmp_path / "second")
    assert a["clip_loads"] == 1 and a["driver_imported_torch"] and a["cache"]["detections_reused"] == 0
    assert b["clip_loads"] == 0 and not b["driver_imported_torch"]
    assert b["segment_workers_with_torch"] == (0 if b["ray_started"] else None)
    assert b["detector"] == a["detector"] == "clip:tiny-clip/open_clip_pytorch_model.bin"
    assert b["cache"]["detections_reused"] == 5 and b["cache"]["chunks_reused"] == 0
    assert b["detections"] == a["detections"]


def _detection_cache(tmp_path):
    cfg = compose_job("detector=saliency")
    plan, _ = prepare(cfg, str(tmp_path / "run"))
    return cfg, plan, Reuse.look_up(cfg, plan, Storage(str(tmp_path / "run"))).detections


@pytest.mark.slow
def test_a_torn_detection_entry_is_ignored_and_written_again(tmp_path, cache_dir):
    cfg, plan, found = _detection_cache(tmp_path)
    detector = OmegaConf.to_object(cfg.detector)
    subjects, info = detect_all(detector, plan.sources, plan.prompts, plan.video_ranges(), found)
    entries = sorted(cache_dir.rglob("*.parquet"))
    assert info.detections_reused == 0 and len(entries) == len(plan.sources) == 5
    entries[0].write_bytes(entries[0].read_bytes()[:200])  # a write cut short by some other tool
    entries[1].write_bytes(b"not parquet")
    again, info = detect_all(detector, plan.sources, plan.prompts, plan.video_ranges(), found)
    assert info.detections_reused == 3 and again == subjects
    again, info = detect_all(detector, plan.sources, plan.prompts, plan.video_ranges(), found)
    assert info.detections_reused == 5 and again == subjects  # both rewritten whole


@pytest.mark.slow
def test_concurrent_writers_of_one_entry_never_show_a_reader_half_of_it(tmp_path, cache_dir):
    cfg, plan, found = _detection_cache(tmp_path)
    subjects, _ = detect_all(OmegaConf.to_object(cfg.detector), plan.sources, plan.prompts, plan.video_ranges())
    uri = next(u for u in plan.sources if isinstance(subjects[u], list))  # the video: the largest entry
    entry = cache.Detection(subjects[uri], "saliency", None)
    seen, stop = [], time.monotonic() + 60

    def write(_):
        for _ in range(25):
            found.put(uri, entry)

    with ThreadPoolExecutor(4) as pool:
        writers = [pool.submit(write, i) for i in range(3)]
        while not all(w.done() for w in writers) and time.monotonic() < stop:
            seen.append(found.get(uri))
        [w.result() for w in writers]
    read = [s for s in seen if s is not None]
    assert len(read) > 10 and all(s == entry for s in read)
    assert not [p for p in cache_dir.rglob("*") if ".tmp" in p.name]


def _file(root, rel, size, age):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (time.time() - age, time.time() - age))
    return rel


@pytest.mark.unit
def test_eviction_removes_the_least_recently_used_past_the_bound_and_dead_writers_temp_files(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old, older, oldest, fresh, kept = (_file(tmp_path, f"chunks/{k}/{k}/0000000-0000010.mp4", 1000, age)
                                       for k, age in (("c", 1000), ("b", 2000), ("a", 3000), ("d", 10), ("e", 9000)))
    gone = _file(tmp_path, "chunks/a/" + temp_name("x.mp4", ".mp4").replace(f"~{os.getpid()}~", f"~{dead.pid}~"),
                 500, 5)
    live = _file(tmp_path, "chunks/a/" + temp_name("y.mp4", ".mp4"), 500, 5)
    stale = _file(tmp_path, "chunks/a/" + temp_name("z.mp4").replace(f"~{HOST}~", "~elsewhere~"), 500, 2 * 86400)
    report = evict(str(tmp_path), max_bytes=3000, keep={kept})
    left = {rel for rel, _, _ in Storage(str(tmp_path)).files()}
    # 5000 bytes of entries: the oldest go until 3000 remain; the kept and the fresh stay.
    assert left == {old, fresh, kept, live}, left
    assert report == {"bytes": 3000, "evicted_files": 2, "evicted_bytes": 2000, "temp_files_swept": 2}
    assert oldest not in left and older not in left and gone not in left and stale not in left
    assert not (tmp_path / "chunks" / "a" / "a").exists() and (tmp_path / "chunks" / "a").is_dir()  # no empty folders


@pytest.mark.unit
def test_weights_a_node_fetched_into_its_cache_are_never_evicted(tmp_path):
    """They are the oldest file there (written once, read in place) and the largest: evicting
    them would fetch a model again for every render."""
    weights = _file(tmp_path, "weights/0123/abcd/open_clip_pytorch_model.bin", 5000, 9000)
    (tmp_path / "weights" / "0123" / "pending").mkdir()  # a version on its way in
    chunk = _file(tmp_path, "chunks/a/a/0000000-0000010.mp4", 1000, 1000)
    report = evict(str(tmp_path), max_bytes=500, keep=set())
    assert (tmp_path / weights).exists() and (tmp_path / "weights" / "0123" / "pending").is_dir()
    assert not (tmp_path / chunk).exists() and report["evicted_files"] == 1 and report["bytes"] == 0


@pytest.mark.render
def test_without_the_cache_nothing_is_kept_or_reused(tmp_path, cache_dir):
    for run in ("first", "second"):
        raypipe.render("fixture", with_test_conf("detector=saliency", "render.cache=false"), run_dir=tmp_path / run)
        report = read_report(tmp_path / run)
        assert report["cache"] == {"enabled": False} and not any(r["reused"] for r in report["segment_runs"])
        assert not (tmp_path / run / "segments").exists()
    assert not list(cache_dir.iterdir())


@pytest.mark.render
def test_an_unwritable_cache_is_one_line_before_any_work(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = render_error(caplog, "fixture", with_test_conf("detector=saliency", f"cache.root={blocker}/cache"),
                        tmp_path / "run")
    assert line.startswith("cache.root: cannot write to") and "render.cache=false" in line  # one line: render_error
    assert not (tmp_path / "run" / "fixture.mp4").exists()


@pytest.mark.render
def test_chunks_made_in_other_task_ranges_serve_and_only_the_frames_they_miss_render(cache_dir, tmp_path):
    """A render on a machine with another core count splits its segments differently: the
    chunks another split made still serve it, and only the frames no chunk holds render."""
    def run(name, max_frames):
        return render(compose_job("detector=saliency", f"render.max_frames_per_task={max_frames}"),
                      str(tmp_path / name))

    small = run("small", 20)
    assert small["tasks"] > small["segments"] and small["cache"]["chunks_reused"] == 0
    large = run("large", 50)  # would be fewer, longer tasks: every frame is already in a chunk
    assert large["cache"]["frames_rendered"] == 0 and large["cache"]["chunks_reused"] == small["tasks"]
    assert md5(large["output"]) == md5(small["output"])
    # Chunks lost (evicted, or their render killed): a third split renders exactly their frames.
    chunks = sorted(p for p in cache_dir.rglob("*.mp4") if "chunks" in p.parts)
    lost = chunks[1::3]
    frames_lost = 0
    for p in lost:
        a, b = (int(v) for v in p.stem.split("-"))
        frames_lost += b - a
        p.unlink()
    third = run("third", 35)
    assert third["cache"]["frames_rendered"] == frames_lost > 0
    assert third["cache"]["chunks_reused"] == small["tasks"] - len(lost)
    video, before = media.decode_all(third["output"]), media.decode_all(small["output"])
    fresh = np.zeros(len(video), bool)
    for r in third["segment_runs"]:
        fresh[r["start"]:r["start"] + r["frames"]] |= not r["reused"]
    assert fresh.sum() == frames_lost and np.array_equal(video[~fresh], before[~fresh])
    # The frames rendered again are the same frames, encoded in other chunks: within the encoder's noise.
    err = np.mean((video[fresh].astype(np.float64) - before[fresh]) ** 2)
    assert 10 * np.log10(255 ** 2 / max(err, 1e-9)) > 40
