"""Many videos in one run: a template and a table of rows, bad rows among them."""
import json
import os
import subprocess
import sys
from html.parser import HTMLParser

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import raypipe
from conftest import ROOT, overrides, run_cli
from raypipe import media
from raypipe.errors import JobError

pytestmark = pytest.mark.render

# The listing's end card (batch.each.after) is left out: these videos are their rows' photos.
SMALL = ["render.width=160", "render.height=90", "render.fps=10", "batch.each.duration=0.6",
         "batch.each.transition_duration=0.2", "detector=saliency", "batch.each.after=[]"]


def photo(folder, name, sample):
    path = folder / name
    cv2.imwrite(str(path), cv2.cvtColor(media.load_image(f"sample:{sample}"), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def table(tmp_path):
    """Rows as people have them: photos beside the table, one row whose photo is missing."""
    folder = tmp_path / "listings"
    folder.mkdir()
    for name, sample in (("a.png", "astronaut"), ("b.png", "coffee"), ("c.png", "chelsea")):
        photo(folder, name, sample)
    rows = folder / "rows.csv"
    rows.write_text("id,address,price,photos\n"
                    "elm,1 Elm St,$1,a.png|b.png\n"
                    "oak,2 Oak Ln,$2,b.png|c.png\n"
                    "bad,3 Bad Rd,$3,a.png|missing.png\n"
                    "ash,4 Ash Ct,$4,c.png|a.png\n")
    return rows


def manifest(root):
    return {r["id"]: r for r in map(json.loads, (root / "manifest.jsonl").read_text().splitlines())}


def test_a_batch_renders_every_good_row_and_records_the_bad_one(table, tmp_path):
    root = tmp_path / "out"
    seen = []
    report = raypipe.render_batch("listing", table, [*SMALL, f"batch.root={root}"], on_progress=seen.append,
                                  run_dir=tmp_path / "run")
    assert (report.done, report.failed, report.skipped, report.videos) == (3, 1, 0, 4)
    records = manifest(root)
    assert sorted(records) == ["ash", "bad", "elm", "oak"] and {r.id for r in seen} == set(records)
    assert records["bad"]["status"] == "failed" and records["bad"]["output"] is None
    assert "missing.png" in records["bad"]["error"] and records["bad"]["error"].startswith("row 3 (id bad)")
    for rid in ("elm", "oak", "ash"):
        r = records[rid]
        assert r["status"] == "done" and r["output"] == str(root / "videos" / f"{rid}.mp4")
        assert media.count_frames(r["output"]) == r["frames"] == 12  # two 0.6 s photos at 10 fps
    # Each video shows its own row's photos: oak opens on the coffee (b.png), elm on the astronaut.
    first = {rid: media.decode_all(records[rid]["output"])[0].astype(float) for rid in ("elm", "oak")}
    astronaut = cv2.resize(media.load_image("sample:astronaut"), (160, 90)).astype(float)
    assert np.abs(first["elm"] - astronaut).mean() < np.abs(first["oak"] - astronaut).mean()
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["done"] == 3 and saved["failed"] == 1 and saved["frames"] == 36 and saved["videos_per_hour"] > 0
    assert saved["detector_actors"] == 0  # one machine: the driver detects
    # work summed over the threads that did it: the look threads (one a core) and the detection thread
    assert 0 < saved["detect_seconds"] < saved["seconds"] * ((os.cpu_count() or 1) + 1) and saved["task_seconds"] > 0
    assert not list(root.rglob("*.tmp*")) and not list(root.rglob("segments"))
    # report.html: a line per row in the rows' order, each video linked (relative to the page), the bad row's error
    page = PageLines()
    page.feed((tmp_path / "run" / "report.html").read_text())
    assert [line[:3] for line in page.lines] == [["1", "elm", "done"], ["2", "oak", "done"], ["3", "bad", "failed"],
                                                 ["4", "ash", "done"]]
    assert page.lines[2][3] == records["bad"]["error"]
    for href, rid in zip(page.links, ("elm", "oak", "ash")):
        assert (tmp_path / "run" / href).resolve() == root / "videos" / f"{rid}.mp4"


class PageLines(HTMLParser):
    """The cells of each line of report.html's table of videos, and its links."""

    def __init__(self):
        super().__init__()
        self.lines, self.links, self._in = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in = True
        elif self._in and tag == "tr":
            self.lines.append([])
        elif self._in and tag == "td":
            self.lines[-1].append("")
        elif self._in and tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in = False

    def handle_data(self, data):
        if self._in and self.lines and self.lines[-1]:
            self.lines[-1][-1] += data


def test_the_checks_before_any_work_read_no_source_and_a_dry_run_reads_them_all(table, tmp_path):
    """Every row is checked before work, but its sources only when detection comes to it: a
    batch of 10,000 rows does not decode 40,000 photos before its first frame."""
    from raypipe.api import compose
    from raypipe.batch.run import checked

    cfg = compose(["+job=listing", f"batch.rows={table}", *SMALL])
    _, videos, failed, _ = checked(cfg, str(tmp_path / "run"), sources=False)
    assert [v.row.id for v in videos] == ["elm", "oak", "bad", "ash"] and not failed
    assert all(v.plan is None for v in videos)
    # nor is a row's config held (~140 KB each) until the batch comes to the row, which makes it again
    assert all(v.cfg is None for v in videos)
    oak = videos[1].load()
    assert oak.job.output == videos[1].output and [s.source for s in oak.job.segments] == [
        str(table.parent / "b.png"), str(table.parent / "c.png")]
    _, videos, failed, _ = checked(cfg, str(tmp_path / "run"), sources=True)
    assert [r.id for r in failed] == ["bad"] and "missing.png" in failed[0].error
    assert [v.row.id for v in videos] == ["elm", "oak", "ash"]
    assert all(v.plan is None and v.cfg is None for v in videos)  # checked, then let go: a dry run's memory is flat


def test_one_video_in_flight_at_a_time_still_renders_every_row(table, tmp_path):
    """batch.max_videos_in_flight=1: the next row is admitted once the video in flight is muxed,
    though no task is left running to say so."""
    report = raypipe.render_batch("listing", table, [*SMALL, "batch.max_videos_in_flight=1",
                                                     f"batch.root={tmp_path / 'out'}"], run_dir=tmp_path / "run")
    assert report.failed == 1  # the bad row (the CLI's exit 1)
    assert {rid: r["status"] for rid, r in manifest(tmp_path / "out").items()} == {
        "elm": "done", "oak": "done", "bad": "failed", "ash": "done"}


def test_the_same_batch_again_renders_only_what_is_missing(table, tmp_path):
    root = tmp_path / "out"
    args = [*SMALL, f"batch.root={root}"]
    raypipe.render_batch("listing", table, args, run_dir=tmp_path / "first")
    (root / "videos" / "oak.mp4").unlink()
    again = raypipe.render_batch("listing", table, args, run_dir=tmp_path / "again")
    status = {r.id: r.status for r in again.records}
    assert status == {"elm": "skipped", "oak": "done", "ash": "skipped", "bad": "failed"}
    assert media.count_frames(str(root / "videos" / "oak.mp4")) == 12


def test_a_dry_run_names_the_failing_rows_and_renders_nothing(table, tmp_path):
    proc = run_cli("+job=listing", f"batch.rows={table}", *SMALL, f"batch.root={tmp_path / 'out'}",
                   f"hydra.run.dir={tmp_path / 'run'}", "--dry-run", command="batch")
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("row ")]
    assert len(errors) == 1 and errors[0].startswith("row 3 (id bad): job.segments[1].source")
    assert "3 of 4 rows would render" in proc.stdout
    assert not (tmp_path / "out" / "videos").exists()


def test_without_the_cache_every_row_is_muxed_before_its_chunks_go(table, tmp_path, monkeypatch):
    """render.cache=false: a video's chunks are in its run folder, deleted once it is muxed;
    the last rows, waited for at the batch's end, lost theirs to the delete before a slow mux."""
    import time

    from raypipe.engine import mux

    join = mux.join
    monkeypatch.setattr(mux, "join", lambda *a: time.sleep(0.5) or join(*a))  # a long video's mux
    root = tmp_path / "out"
    report = raypipe.render_batch("listing", table, [*SMALL, "render.cache=false", f"batch.root={root}"],
                                  run_dir=tmp_path / "run")
    assert (report.done, report.failed) == (3, 1), [r.error for r in report.records]
    assert all(media.count_frames(str(root / "videos" / f"{i}.mp4")) == 12 for i in ("elm", "oak", "ash"))
    assert not list((tmp_path / "run").rglob("segments"))


def test_fail_fast_stops_at_the_first_bad_row_and_the_manifest_holds_every_video_published(table, tmp_path):
    """batch.fail_fast=true: the batch stops at row 3's missing photo, with its error; the
    videos that were being muxed when it stopped are still published, and recorded."""
    root = tmp_path / "out"
    with pytest.raises(JobError) as e:
        raypipe.render_batch("listing", table, [*SMALL, "batch.fail_fast=true", f"batch.root={root}"],
                             run_dir=tmp_path / "run")
    assert e.value.where.startswith("row 3 (id bad)") and "missing.png" in str(e.value)
    records = manifest(root)
    published = sorted(p.stem for p in (root / "videos").glob("*.mp4")) if (root / "videos").exists() else []
    assert sorted(i for i, r in records.items() if r["status"] == "done") == published
    assert records["bad"]["status"] == "failed" and "ash" not in published
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]


def test_rows_cannot_reach_outside_their_roots(table, tmp_path):
    secret = photo(tmp_path, "secret.png", "rocket")  # beside the table's folder, not in it
    table.write_text(f"id,address,price,photos\nevil,x,y,{secret}\nok,x,y,a.png\n")
    report = raypipe.render_batch("listing", table, [*SMALL, f"batch.root={tmp_path / 'out'}"], run_dir=tmp_path / "r")
    errors = {r.id: r.error for r in report.records if r.status == "failed"}
    assert list(errors) == ["evil"] and "outside batch.allowed_roots" in errors["evil"]
    # An output pattern that would leave the root is refused for its row, before any work.
    table.write_text("id,address,price,photos\n../../escape,x,y,a.png\n")
    report = raypipe.render_batch("listing", table, [*SMALL, f"batch.root={tmp_path / 'out2'}"], run_dir=tmp_path / "s")
    assert report.failed == 1 and "would leave the batch's root" in report.records[0].error
    assert not list(tmp_path.rglob("escape.mp4"))


def test_outputs_that_collide_refuse_the_batch_naming_the_rows(table, tmp_path):
    table.write_text("id,address,price,photos\na,x,same,a.png\nb,y,same,b.png\nc,z,other,c.png\n")
    with pytest.raises(JobError) as e:  # the pattern as a shell passes it: Hydra would reject the braces
        raypipe.render_batch("listing", table, [*SMALL, f"batch.root={tmp_path / 'out'}", "batch.output=all/{price}.mp4"],
                             run_dir=tmp_path / "run")
    assert e.value.where == "batch.output" and "rows a, b -> " in e.value.reason and "same.mp4" in e.value.reason
    assert not (tmp_path / "out" / "all").exists()


def test_jsonl_and_parquet_rows_carry_their_own_job_and_fields(table, tmp_path):
    folder = table.parent
    rows = [{"id": "custom", "address": "5 Yew", "price": "$5", "photos": ["a.png"],
             "job": {"segments": [{"source": "c.png", "duration": 0.5, "effect": "static"}]}},
            {"id": "nested", "address": {"street": "not a plain value"}, "price": "$6", "photos": ["b.png"]}]
    jsonl = folder / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = raypipe.render_batch("listing", jsonl, [*SMALL, f"batch.root={tmp_path / 'j'}"], run_dir=tmp_path / "rj")
    by_id = {r.id: r for r in report.records}
    assert by_id["custom"].status == "done" and by_id["custom"].frames == 5  # its own job's one segment
    assert by_id["nested"].status == "failed" and "row 2 (id nested).address: must be a plain value" in \
        by_id["nested"].error
    parquet = folder / "rows.parquet"
    pq.write_table(pa.table({"id": ["p1"], "address": ["6 Fir"], "price": ["$7"], "photos": [["c.png", "a.png"]]}),
                   parquet)
    report = raypipe.render_batch("listing", parquet, [*SMALL, f"batch.root={tmp_path / 'p'}"], run_dir=tmp_path / "rp")
    assert [(r.id, r.status, r.frames) for r in report.records] == [("p1", "done", 12)]


def test_clip_loads_once_for_the_whole_batch_and_a_shared_photo_is_detected_once(table, tiny_clip, tmp_path):
    overrides = [f"{k}={v}" for k, v in tiny_clip.items()]
    report = raypipe.render_batch("listing", table, [*SMALL, "detector=clip", "detector.fallback=null", *overrides,
                                                     f"batch.root={tmp_path / 'out'}"], run_dir=tmp_path / "run")
    assert report.done == 3 and report.detector_loads == 1 and report.detector.startswith("clip:")


def test_rows_with_their_own_prompts_have_a_shared_photo_detected_for_each_set_of_prompts(table, tiny_clip, tmp_path):
    rows = [{"id": "cup", "photos": ["a.png"], "job": {"prompts": ["a cup"]}},
            {"id": "dog", "photos": ["a.png"], "job": {"prompts": ["a dog"]}},
            {"id": "plain", "photos": ["a.png"]},
            {"id": "cup2", "photos": ["a.png"], "job": {"prompts": ["a cup"]}}]
    jsonl = table.parent / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps({"address": "-", "price": "-", **r}) + "\n" for r in rows))
    cache = tmp_path / "cache"
    report = raypipe.render_batch("listing", jsonl, [*SMALL, "detector=clip", "detector.fallback=null",
                                                     *overrides(tiny_clip), f"cache.root={cache}",
                                                     f"batch.root={tmp_path / 'out'}"], run_dir=tmp_path / "run")
    assert report.done == 4 and report.detector_loads == 1
    # one detection per set of prompts (the cache keys them by their prompts): cup2 reuses cup's
    assert len(list((cache / "detections").rglob("*.parquet"))) == 3


def test_rows_that_show_one_clip_over_other_spans_have_each_span_detected_for_itself(table, tmp_path):
    """A clip is detected at keyframes over the spans that its row shows: a row that shows
    seconds 3-4 of it must not be given the keyframes of another row's seconds 0-1."""
    import media_inputs as mi

    clip = mi.encode_rgb(table.parent / "walk.mp4", mi.marked_frames(192, 108, 24 * 5))  # 5 s
    rows = [{"id": "early", "job": {"segments": [{"source": "walk.mp4", "start": 0.0, "end": 1.0}]}},
            {"id": "late", "job": {"segments": [{"source": "walk.mp4", "start": 3.0, "end": 4.0}]}}]
    jsonl = table.parent / "spans.jsonl"
    jsonl.write_text("".join(json.dumps({"address": "-", "price": "-", "photos": ["a.png"], **r}) + "\n" for r in rows))
    cache = tmp_path / "cache"
    report = raypipe.render_batch("listing", jsonl, [*SMALL, f"cache.root={cache}", f"batch.root={tmp_path / 'out'}"],
                                  run_dir=tmp_path / "run")
    assert report.done == 2 and clip.exists()
    # one detection per span, each with its own keyframes' times (seconds in the clip)
    times = sorted(sorted(t for t in pq.read_table(p)["t"].to_pylist()) for p in (cache / "detections").rglob("*.parquet"))
    assert len(times) == 2 and 0.0 <= times[0][0] and times[0][-1] <= 1.0 and 3.0 <= times[1][0] <= times[1][-1] <= 4.0


def test_with_a_gpu_asked_for_clip_runs_in_one_actor_for_the_whole_batch_and_the_driver_never_imports_torch(
        table, tiny_clip, tmp_path):
    """detector.num_gpus: the batch's one detector is an actor on a node with a GPU (a Ray that
    declares one; torch finds none and runs it on the CPU, saying so), loaded once for every row."""
    args = [*SMALL, "detector=clip", "detector.fallback=null", "detector.num_gpus=1",
            *(f"{k}={v}" for k, v in tiny_clip.items()), f"batch.root={tmp_path / 'out'}"]
    seen = batch_on_ray("num_cpus=2, num_gpus=1", table, args, tmp_path,
                        "[r.done, r.detector_loads, r.detector.split(':')[0], r.executor, 'torch' in sys.modules]")
    assert seen == [3, 1, "clip", "ray", False]


def test_a_pool_of_detector_actors_shares_the_rows_each_loading_the_model_once(table, tiny_clip, tmp_path):
    """batch.detector_actors=2 on a Ray that declares two GPUs: both actors get sources (two
    loads, not one per row), and every good row is rendered, the driver still without torch."""
    args = [*SMALL, "detector=clip", "detector.fallback=null", "detector.num_gpus=1", "batch.detector_actors=2",
            *(f"{k}={v}" for k, v in tiny_clip.items()), f"batch.root={tmp_path / 'out'}"]
    seen = batch_on_ray("num_cpus=3, num_gpus=2", table, args, tmp_path,
                        "[r.done, r.failed, r.detector_loads, r.executor, 'torch' in sys.modules]")
    assert seen == [3, 1, 2, "ray", False]


def batch_on_ray(resources: str, table, args, tmp_path, fields: str):
    """A batch in a fresh process on a local Ray with these resources; `fields` of its report,
    as that process prints them (so that the driver's own imports can be seen)."""
    script = (
        "import json, sys, ray, raypipe\n"
        f"ray.init(address='local', {resources}, include_dashboard=False, log_to_driver=False)\n"
        f"r = raypipe.render_batch('listing', {str(table)!r}, {args!r}, run_dir={str(tmp_path / 'run')!r})\n"
        f"print(json.dumps({fields}))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_bundled_template_and_rows_render_from_the_readme_command(tmp_path):
    proc = run_cli("+job=listing", "batch.rows=raypipe/conf/batch/listings.csv", *SMALL[:3],
                   f"batch.root={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'run'}", command="batch", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = [line for line in proc.stdout.splitlines() if line.startswith("/")]  # a path per video, as it is out
    assert [o.rsplit("/", 1)[-1] for o in outputs] == ["elm-12.mp4", "oak-7.mp4", "pine-3.mp4"]
    assert all(media.count_frames(o) == 125 for o in outputs)  # 4 photos and the end card x 2.5 s at 10 fps


def test_on_ray_with_storage_rows_read_their_local_photos_from_staged_copies_that_go_when_done(tmp_path):
    """With storage.root and Ray's workers, a row's local photos are staged into storage once
    (nodes need not share the driver's disk): removing the originals once the first video is
    out leaves the other rows rendering, from the copies, and no copy is left at the end."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, sample in (("a.png", "astronaut"), ("b.png", "coffee")):
        photo(folder, name, sample)
    rows = tmp_path / "rows.csv"
    rows.write_text("id,address,price,photos\n" + "".join(f"r{i},{i} Elm St,${i},photos/a.png|photos/b.png\n" for i in range(3)))
    store, run = tmp_path / "store", tmp_path / "outputs" / "listing" / "run"
    args = [*SMALL, f"batch.root={tmp_path / 'out'}", f"storage.root={store}", "batch.max_videos_in_flight=1"]
    script = (
        "import json, os, ray, raypipe\n"
        "ray.init(address='local', num_cpus=2, include_dashboard=False, log_to_driver=False)\n"
        "def gone(record):  # the originals go once the first video is out\n"
        "    for name in ('a.png', 'b.png'):\n"
        f"        if os.path.exists(os.path.join({str(folder)!r}, name)): os.remove(os.path.join({str(folder)!r}, name))\n"
        f"r = raypipe.render_batch('listing', {str(rows)!r}, {args!r}, on_progress=gone, run_dir={str(run)!r})\n"
        "print(json.dumps([r.done, r.failed, r.executor]))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [3, 0, "ray"]
    assert not list(folder.iterdir())  # the originals went after the first video
    assert all(media.count_frames(str(tmp_path / "out" / "videos" / f"r{i}.mp4")) == 12 for i in range(3))
    kept = store / "listing" / "run"  # the run's place in storage: its record, no staged file
    assert json.loads((kept / "report.json").read_text())["done"] == 3 and (kept / "report.html").exists()
    assert not (kept / "inputs").exists() and not list(kept.rglob("*.png"))


@pytest.mark.timeout(120)
def test_a_detection_thread_that_dies_ends_the_batch_with_its_error_not_a_hang(table, tmp_path, monkeypatch):
    """A fault that is not a row's (a bug, a lost service) kills the detection thread while the
    look thread waits to hand it the next row: the batch ends with that error."""
    from raypipe.detection import detector

    def broken(*args, **kwargs):
        raise RuntimeError("the detector broke")

    monkeypatch.setattr(detector, "detect_all", broken)
    with pytest.raises(RuntimeError, match="the detector broke"):
        raypipe.render_batch("listing", table, [*SMALL, "batch.max_videos_in_flight=1", f"batch.root={tmp_path}/o"],
                             run_dir=tmp_path / "run")


def test_a_one_photo_listing_shows_its_photo_whole_then_the_end_card_under_the_logo(tmp_path):
    """The end card is a segment of its own after the photos: a one-photo row shows its photo
    for its whole duration, goes into the card, and the logo is drawn over the card."""
    rows = tmp_path / "rows.csv"
    rows.write_text("id,address,price,photos\nelm,1 Elm St,,sample:astronaut\n")
    report = raypipe.render_batch("listing", rows, ["render.width=160", "render.height=90", "render.fps=10",
                                                    "batch.each.duration=1.0", "batch.each.transition_duration=0.2",
                                                    "detector=saliency", f"batch.root={tmp_path / 'out'}"],
                                  run_dir=tmp_path / "run")
    assert (report.done, report.failed) == (1, 0)  # its empty price reads "Price on application"
    frames = media.decode_all(str(tmp_path / "out" / "videos" / "elm.mp4")).astype(int)
    assert len(frames) == 20  # the photo's 1 s, then the card's
    card = np.array([0x1f, 0x3a, 0x5f])
    off_card = np.abs(frames - card).max(axis=-1) > 12
    # the photo fills every frame before the crossfade; the card is exact from its start where nothing is drawn
    assert all(off_card[k, 45:, :40].mean() > 0.9 for k in range(8))
    assert all(not off_card[k, 70:, :30].any() for k in range(10, 20))
    # the logo (top right, 10% of the frame) is drawn over the card to the end
    assert all(off_card[k, :20, 130:].sum() >= 15 for k in range(10, 20))  # nothing else is drawn there


def test_a_failed_rows_progress_line_names_its_row_once(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("id,address,price,photos\nok-1,1 Elm St,$1,sample:coffee\nbad-2,2 Oak Ln,$2,broken.png\n")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    proc = run_cli("+job=listing", f"batch.rows={rows}", *SMALL, f"batch.root={tmp_path / 'out'}",
                   f"hydra.run.dir={tmp_path / 'run'}", command="batch")
    assert proc.returncode == 1
    log = (tmp_path / "run" / "render.log").read_text()
    said = [line for line in log.splitlines() if "failed:" in line and "bad-2" in line]
    assert len(said) == 1 and said[0].count("row 2 (id bad-2)") == 1, log[-2000:]
    assert said[0].split(" - ", 1)[1].startswith("row 2 (id bad-2): failed: job.segments[0].source: "), said
