"""End to end: real Ray, real ffmpeg, real decoded frames."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import ray
from omegaconf import OmegaConf

from conftest import (
    FFMPEG,
    ROOT,
    TEST_CONF,
    compose_job,
    overrides,
    read_report,
    render,
    render_error,
    run_cli,
    with_test_conf,
)
from raypipe import media
from raypipe.api import compose
from raypipe.detection.detections import Detections
from raypipe.detection.detector import detect_all, expand
from raypipe.detection.saliency import detect_saliency
from raypipe.engine.mux import Muxer
from raypipe.engine.task import in_shared_memory, render_task, segment_frames
from raypipe.errors import RaypipeError
from raypipe.media import MediaError, load_image
from raypipe.plan.cost import estimated_ms
from raypipe.plan.timeline import split
from raypipe.plan.validate import prepare
from raypipe.storage import Storage

FIXTURE_SECONDS = 5.4  # tests/conf/job/fixture.yaml: 1 + 0.75 + 0.9 + 0.75 + 0.75 + 0.75 + 0.5
FIXTURE_FRAMES = round(FIXTURE_SECONDS * 24)
REPORT_KEYS = {"frames", "fps", "width", "height", "duration_s", "segments", "detector", "clip_loads",
               "segment_workers_with_torch", "stages", "segment_runs"}


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.render
def test_demo_renders_from_the_readme_command(tmp_path):
    proc = run_cli("+job=demo", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.strip().splitlines()[-1]
    assert out == str(tmp_path / "demo.mp4")
    info = media.probe(out)
    assert (info.width, info.height, info.fps) == (1280, 720, 30.0)
    assert media.count_frames(out) == 588 and info.duration == pytest.approx(19.6, abs=0.05)
    assert info.audio
    report = read_report(tmp_path)
    assert REPORT_KEYS <= set(report)
    assert report["frames"] == 588 and report["segments"] == 7
    # No weights here: every job falls back to saliency unless strict, and the report says what ran.
    assert report["detector"] == "saliency" and report["detector_fallback"]
    # Rendered by the driver's threads (2 cores): no Ray worker ran, so none is counted.
    assert report["clip_loads"] == 0 and report["segment_workers_with_torch"] == (0 if report["ray_started"] else None)
    assert "FELL BACK TO SALIENCY" in proc.stdout
    assert not (tmp_path / "segments").exists()


@pytest.mark.render
def test_clip_loads_once_per_render_and_segment_workers_never_import_torch(ray_local, tiny_clip, tmp_path):
    cfg = compose_job("detector=clip", *overrides(tiny_clip))
    report = render(cfg, str(tmp_path))
    assert report["detector"].startswith("clip:tiny-clip/")
    assert report["clip_loads"] == 1
    assert report["segments"] == 7 and len(report["segment_runs"]) == report["tasks"] >= 7
    assert report["segment_workers_with_torch"] == 0
    assert report["masks_zero_copy"] is True
    assert all(d["method"] in ("clip", "saliency (no CLIP subject)") for d in report["detections"])
    assert media.count_frames(report["output"]) == report["frames"] == FIXTURE_FRAMES


@ray.remote
def inspect_mask(detections: Detections, key: str) -> dict:
    mask = detections.subject(key).mask
    return {"plasma": in_shared_memory(mask), "writeable": mask.flags.writeable,
            "owndata": mask.flags.owndata, "shape": mask.shape}


@pytest.mark.render
def test_masks_reach_tasks_zero_copy(ray_local):
    keys = ("sample:astronaut", "sample:coffee")
    detections = Detections.pack({k: detect_saliency(load_image(k)) for k in keys})
    assert detections.masks.nbytes > 100 * 1024  # above Ray's inline threshold
    ref = ray.put(detections)
    for key in keys:
        seen = ray.get(inspect_mask.remote(ref, key))
        assert seen["plasma"] and not seen["writeable"] and not seen["owndata"]
        assert seen["shape"] == detections.subject(key).mask.shape


@pytest.mark.render
def test_each_videos_detections_get_their_own_object_whatever_python_reuses(ray_local):
    """A batch puts each video's detections once, and a failed row's are dropped unreleased:
    a later video's Detections that Python allocates where they were gets its own object,
    never theirs (the executor knew its objects by address)."""
    from raypipe.engine.on_ray import RayExecutor

    executor = RayExecutor(compose_job().ray)
    executor.start()
    subject = detect_saliency(load_image("sample:coffee"))
    for i in range(40):
        detections = Detections.pack({f"v{i}.png": subject})  # the one before is dropped here
        assert ray.get(executor._ref(detections)).keys == (f"v{i}.png",)
    executor.close()


def render_single_process(cfg, out_dir):
    """The same job through the same functions, in this process, with no Ray at all."""
    plan, output = prepare(cfg, str(out_dir))
    subjects, _ = detect_all(OmegaConf.to_object(cfg.detector), plan.sources, plan.prompts, plan.video_ranges())
    detections = Detections.pack(expand(subjects), smoothing=cfg.detector.track_smoothing)
    store = Storage(str(out_dir))
    muxer = Muxer(plan.total_frames, plan.duration, plan.audio, output, plan.encode.codec)
    for task in split(plan, cfg.render.max_frames_per_task):
        muxer.add(render_task(task, detections, plan.encode, store, task.chunk(plan.encode.chunk_extension)))
    muxer.finish()
    return plan, detections, output


# 1000: one task per segment; 7: every segment split, segment 2's range (frames 42..63, the
# video clip) at 58, inside its zoom_through (57..63).
@pytest.mark.render
@pytest.mark.parametrize("max_frames", [1000, 7], ids=["whole segments", "split at 7 frames"])
def test_distributed_render_equals_single_process_render(ray_local, tmp_path, max_frames):
    cfg = compose_job("detector=saliency", f"render.max_frames_per_task={max_frames}")
    report = render(cfg, str(tmp_path / "ray"))
    plan, detections, single = render_single_process(cfg, tmp_path / "single")
    if max_frames == 7:
        starts = {r["start"] for r in report["segment_runs"]}
        assert report["tasks"] == len(report["segment_runs"]) == 22 and 58 in starts
    distributed = media.decode_all(report["output"])
    reference = media.decode_all(single)
    assert len(distributed) == len(reference) == plan.total_frames == FIXTURE_FRAMES
    # Same frames in, same encoder settings: the encoded videos decode bit-exactly alike.
    assert np.array_equal(distributed, reference)
    # The decoded fade_black (frames 76..81, into segment 4) dips to black in its middle.
    brightness = distributed.reshape(len(distributed), -1).mean(axis=1)
    assert brightness[78:80].max() < 0.25 * min(brightness[70], brightness[88])
    # Against the raw rendered frames the only loss is H.264 at CRF 18 with 4:2:0 chroma:
    # the stated bound is 30 dB on every frame at this small size (35 dB on average).
    raw = np.stack([f for seg in plan.segments for f in segment_frames(seg, detections, plan.encode)])
    scores = np.array([psnr(a, b) for a, b in zip(distributed, raw)])
    assert scores.min() >= 30.0 and scores.mean() >= 35.0, (int(scores.argmin()), scores.min(), scores.mean())
    # No join drops, repeats or shifts a frame: each decoded frame matches its own raw frame
    # better than either neighbour, wherever the two differ by more than the codec's error.
    checked = 0
    for k in range(len(raw)):
        for j in (k - 1, k + 1):
            if 0 <= j < len(raw) and psnr(raw[j], raw[k]) < 30.0:
                assert scores[k] > psnr(distributed[k], raw[j]), (k, j)
                checked += 1
    assert checked >= 10


@pytest.mark.render
def test_a_range_of_a_segment_renders_the_frames_the_whole_segment_has_there(ray_local, tmp_path):
    """The seams are invisible before encoding: any split of a segment (inside a transition,
    inside a video clip, one frame long) gives exactly the whole segment's frames."""
    cfg = compose_job("detector=saliency")
    plan, _ = prepare(cfg, str(tmp_path))
    found, _ = detect_all(OmegaConf.to_object(cfg.detector), plan.sources, plan.prompts, plan.video_ranges())
    detections = Detections.pack(expand(found))
    seg = plan.segments[2]  # the clip under punch_in, then its zoom_through (frames 57..63) into segment 3
    whole = list(segment_frames(seg, detections, plan.encode))
    for cuts in ([58], [43, 44, 60], [50, 57, 63]):
        bounds = [seg.start, *cuts, seg.end]
        pieces = [f for a, b in zip(bounds, bounds[1:])
                  for f in segment_frames(seg, detections, plan.encode, None, a, b)]
        assert len(pieces) == len(whole) and all(np.array_equal(p, w) for p, w in zip(pieces, whole)), cuts


@pytest.mark.unit
def test_tasks_split_long_segments_evenly_and_the_costliest_go_first(tmp_path):
    cfg = compose_job("detector=saliency")
    plan, _ = prepare(cfg, str(tmp_path))
    tasks = split(plan, 10)
    assert [t.start for t in tasks][:4] == [0, 8, 16, 24] and tasks[-1].end == plan.total_frames
    assert all(a.end == b.start for a, b in zip(tasks, tasks[1:])) and max(t.frames for t in tasks) <= 10
    assert len(split(plan, None)) == len(plan.segments)
    # Per frame, a video range (decoded, pyramids rebuilt every frame) outweighs a still's.
    video = next(t for t in tasks if t.segment.shot.clip is not None)
    still = next(t for t in tasks if t.segment.shot.effect == "static")
    assert estimated_ms(video) / video.frames > 1.5 * estimated_ms(still) / still.frames


@pytest.mark.render
def test_joined_chunks_have_continuous_timestamps_and_the_soundtrack(ray_local, tmp_path):
    report = render(compose_job("detector=saliency", "render.fps=30000/1001"), str(tmp_path))
    err = subprocess.run([FFMPEG, "-hide_banner", "-i", report["output"], "-map", "0:v", "-vf", "showinfo",
                          "-f", "null", "-"], capture_output=True, text=True).stderr
    pts = np.array([float(x) for x in re.findall(r"pts_time:([\d.]+)", err)])
    assert len(pts) == report["frames"] == round(FIXTURE_SECONDS * 30000 / 1001)
    assert pts[0] == 0.0
    assert np.allclose(np.diff(pts), 1001 / 30000, atol=1e-4)
    info = media.probe(report["output"])
    assert info.audio and info.duration == pytest.approx(report["duration_s"], abs=0.05)


# (the command line, the start of the one line the CLI prints after "error: ")
UNKNOWN_JOB = (["+job=nope"], "job: no config named 'nope'")
UNDECODABLE_IMAGE = (["+job=fixture", "job.segments.4.source={bad_image}"],
                     "job.segments[4].source: cannot decode image")
BAD_INPUTS = [
    UNKNOWN_JOB,
    (["+job=fixture", "job.segments.1.effect=zoomy"], "job.segments[1].effect: unknown effect 'zoomy'"),
    (["+job=fixture", "job.segments.4.source=/no/such/image.png"],
     "job.segments[4].source: no such file: /no/such/image.png"),
    UNDECODABLE_IMAGE,
    (["+job=fixture", "job.segments.2.source=/no/such/clip.mp4"],
     "job.segments[2].source: no such file: /no/such/clip.mp4"),
    (["+job=fixture", "job.segments.2.end=9"], "job.segments[2].end: 9.0 s is past the end of"),
    (["+job=fixture", "job.segments.2.duration=3.5"], "job.segments[2].duration: the shot shows"),
    (["+job=fixture", "job.segments.0.speed=2"], "job.segments[0].speed: applies to video sources only"),
    (["+job=fixture", "job.segments.0.params.zoom=0.5"], "job.segments[0].params: zoom: must be >= 1"),
    (["+job=fixture", "job.segments.0.transition.type=dissolve"],
     "job.segments[0].transition.type: unknown transition 'dissolve'"),
    (["+job=fixture", "job.segments.1.transition.duration=2"],
     "job.segments[1].transition.duration: 2.0 s is longer than the segment (0.75 s)"),
    (["+job=fixture", "+job.segments.1.transition.params.direction=sideways"],
     "job.segments[1].transition.params: direction: must be left, right, up or down"),
    (["+job=fixture", "job.segments.3.caption.font=No Such Font"],
     "job.segments[3].caption: no installed font named 'No Such Font'"),
    (["+job=fixture", "job.segments.3.caption.position=middle"],
     "job.segments[3].caption.position: unknown position 'middle'"),
    (["+job=fixture", "render.codec=vp9"], "job.output: vp9 goes in .webm, .mkv files"),
    (["+job=fixture", "job.segments.0.duration=0"], "job.segments[0].duration: must be > 0"),
    (["+job=fixture", "job.segments.3.duration=-1.5"], "job.segments[3].duration: must be > 0"),
    (["+job=fixture", "render.width=321"], "render.width: must be a positive even number"),
    (["+job=fixture", "render.width=100000", "render.height=100000"],
     "render.width: h264 encodes at most 16384 pixels a side"),
    (["+job=fixture", "job.name=../escape"], "job.name: must be a plain name, no path"),
    (["+job=fixture", "render.height=0"], "render.height: must be a positive even number"),
    (["+job=fixture", "render.colour=red"], "render.colour: Key 'colour' not in 'RenderCfg'"),
    (["+job=fixture", "job.segments.0.effect=reframe"],  # the job file's ken_burns zoom stays: say how to drop it
     "job.segments[0].params: unknown parameter 'zoom' for effect reframe (known: fill, fill_blur, fill_dim, margin); "
     "on the command line, drop it with ~job.segments.0.params.zoom"),
    (["+job=fixture", "job.segments.0.params.start=left"],
     "job.segments[0].params.start: Key 'start' is not in struct; to add it: +job.segments.0.params.start=VALUE"),
    (["+job=fixture", "job.segments.9.duration=2"], "job.segments[9]: the job has no segment 9 (they count from 0)"),
    (["+job=fixture", "render.fps=0"], "render.fps: must be > 0"),
    (["+job=fixture", "detector=clip", "detector.pretrained=/no/weights.bin"],
     "detector.pretrained: no checkpoint file at /no/weights.bin"),
]
# Refused by the CLI's process only: its main turns OmegaConf's bare AssertionError (a key
# under a null node) into the line, and the cluster's address is tried as the render starts Ray.
ON_THE_COMMAND_LINE = [
    UNKNOWN_JOB,
    UNDECODABLE_IMAGE,
    (["+job=fixture", "detector.image_size.0=448"],
     "the overrides could not be applied to the config (+job=fixture detector.image_size.0=448"),
    (["+job=fixture", "ray.address=127.0.0.1:1"], "ray.address: cannot reach a Ray cluster at '127.0.0.1:1'"),
    (["job=fixture"], "job: a job is added to the config: write +job=NAME (or +job=path/to/job.yaml)"),
    (["+job=fixture", "job.segments.1.caption.txt=hi"],
     "job.segments[1].caption.txt: Key 'txt' not in 'CaptionCfg'; did you mean 'text'?"),
    (["tests/conf/job/nope.yaml"], "job: no such file: tests/conf/job/nope.yaml"),
    (["+job=tests/conf/job/nope.yaml"], "job: no such file: tests/conf/job/nope.yaml"),
]


def case_ids(table):
    return [m.split(":")[0] + "|" + a[-1] for a, m in table]


def bad_paths(tmp_path):
    """An image that does not decode, and where the video would go."""
    bad_image = tmp_path / "bad.png"
    bad_image.write_text("not an image")
    return bad_image, tmp_path / "out" / "video.mp4"


def assert_nothing_written(tmp_path, output):
    assert not output.exists() and not output.parent.exists()
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob("report.json"))


@pytest.mark.unit
@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=case_ids(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_leaves_nothing(args, message, tmp_path):
    """Composed and validated as the CLI does (`--config-dir tests/conf ARGS`), in this process:
    the error is the line the CLI prints after `error: `."""
    bad_image, output = bad_paths(tmp_path)
    with pytest.raises(RaypipeError) as caught:
        cfg = compose([f"hydra.searchpath=[file://{TEST_CONF}]", *[a.format(bad_image=bad_image) for a in args],
                       f"job.output={output}"])
        prepare(cfg, str(tmp_path / "run"))
    line = str(caught.value)
    assert "\n" not in line and line.startswith(message), line
    assert_nothing_written(tmp_path, output)


@pytest.mark.render
@pytest.mark.parametrize("args,message", ON_THE_COMMAND_LINE, ids=case_ids(ON_THE_COMMAND_LINE))
def test_bad_input_on_the_command_line_is_one_error_line_and_exit_2(args, message, tmp_path):
    bad_image, output = bad_paths(tmp_path)
    proc = run_cli("--config-dir", "tests/conf", *[a.format(bad_image=bad_image) for a in args],
                   f"job.output={output}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message), proc.stderr
    assert_nothing_written(tmp_path, output)


@pytest.mark.render
def test_two_renders_started_together_never_share_a_run(tmp_path):
    """Each render's run directory carries its own id (the default template's ${run_id:}),
    so its chunks and default output are its own, and each prints the file it produced."""
    run_dir = f"{tmp_path}/${{job.name}}/${{now:%Y-%m-%d_%H-%M-%S}}-${{run_id:}}"
    procs = [subprocess.Popen([sys.executable, "-m", "raypipe", "render", "--config-dir", "tests/conf", "+job=fixture",
                               "detector=saliency", "render.width=160", "render.height=90", f"render.fps={fps}",
                               f"hydra.run.dir={run_dir}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for fps in (24, 12)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        outputs.append(out.strip().splitlines()[-1])
    assert outputs[0] != outputs[1]
    assert [media.probe(o).fps for o in outputs] == [24.0, 12.0]
    assert [media.count_frames(o) for o in outputs] == [round(FIXTURE_SECONDS * 24), round(FIXTURE_SECONDS * 12)]


@pytest.mark.render
def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output's folder should be")
    line = render_error(caplog, "fixture", with_test_conf("detector=saliency", f"job.output={blocker / 'video.mp4'}"),
                        tmp_path / "run")
    assert line == f"job.output: {blocker} is a file, not a folder"
    assert "segment 0" not in caplog.text and not list(tmp_path.rglob("*.mp4"))


@pytest.mark.render
def test_a_segment_failing_mid_render_leaves_no_output_and_no_chunks(ray_local, tmp_path, monkeypatch):
    import cv2

    from raypipe.engine.detecting import LocalDetector

    photo = tmp_path / "coffee.png"
    cv2.imwrite(str(photo), cv2.cvtColor(load_image("sample:coffee"), cv2.COLOR_RGB2BGR))
    real_detect = LocalDetector.detect

    def detect_then_lose_the_photo(*args, **kwargs):
        found = real_detect(*args, **kwargs)
        photo.unlink()  # after validation and detection, before the segment tasks read it
        return found

    monkeypatch.setattr(LocalDetector, "detect", detect_then_lose_the_photo)
    run_dir = tmp_path / "run"
    output = tmp_path / "out" / "video.mp4"
    cfg = compose_job("detector=saliency", f"job.segments.3.source={photo}", f"job.output={output}")
    with pytest.raises(MediaError, match=f"^no such file: {photo}$"):
        render(cfg, str(run_dir))
    assert not output.exists() and not (run_dir / "segments").exists()
    assert not list(tmp_path.rglob("*.mp4")) and not (run_dir / "report.json").exists()


@pytest.mark.render
def test_unavailable_weights_stop_the_render_before_any_segment(tmp_path, caplog):
    output = tmp_path / "video.mp4"
    last = render_error(caplog, "fixture", with_test_conf("detector=clip", "detector.fallback=null",
                                                          f"job.output={output}"), tmp_path / "run")
    assert last.startswith("detector.pretrained: ") and "ViT-B-16/laion2b_s34b_b88k" in last
    assert "detector=saliency" in last
    assert "segment 0" not in caplog.text and not output.exists()
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob("report.json"))


@pytest.mark.render
def test_overrides_reach_the_video_from_a_users_config_dir(tmp_path):
    output = tmp_path / "elsewhere" / "small.mp4"
    proc = run_cli("--config-dir", "tests/conf", "+job=fixture", "detector=saliency", "render.fps=12",
                   "render.width=256", "render.height=144", f"job.output={output}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(output)
    info = media.probe(str(output))
    assert (info.width, info.height, info.fps) == (256, 144, 12.0)
    assert media.count_frames(str(output)) == round(FIXTURE_SECONDS * 12)
    report = read_report(tmp_path / "run")
    assert report["output"] == str(output) and report["fps_exact"] == "12/1"


HEAD_START = """
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from conftest import compose_job
from raypipe.engine.driver import detect
from raypipe.engine.executor import Work
from raypipe.engine.headstart import HeadStart
from raypipe.engine.on_ray import RayExecutor
from raypipe.engine.threads import ThreadExecutor
from raypipe.plan.cost import ordered_tasks
from raypipe.plan.validate import prepare
from raypipe.storage import Storage

folder = sys.argv[1]
cfg = compose_job("detector=saliency", "ray.num_cpus=2")
plan, _ = prepare(cfg, folder)
store = Storage(folder)
with ThreadPoolExecutor(1) as pool, HeadStart(ThreadExecutor(1), RayExecutor(cfg.ray)) as executor:
    found = pool.submit(lambda: detect(cfg.detector, plan, None)[0])  # still detecting: a Future
    works = [Work(i, t, found, plan.encode, store, t.chunk(plan.encode.chunk_extension))
             for i, t in enumerate(ordered_tasks(plan, 20)[:3])]
    for w in works:
        executor.submit(w)
    executor.start()
    outcomes = []
    while len(outcomes) < 3:
        outcomes += executor.wait(1.0)
    stats = executor.stats()
    print(json.dumps({"ran": {o.work.id: [o.manifest.executor, o.work.name] for o in outcomes},
                      "ray_started": stats.ray_started, "put_once": stats.object_store_bytes == found.result().nbytes}))
"""


@pytest.mark.render
def test_the_driver_renders_while_ray_is_still_starting_and_ray_takes_the_rest(tmp_path):
    """The head start gives the driver's thread the first task while Ray is not up (a real
    chunk in storage, rendered once, while `start` blocks on Ray); Ray takes every other. In a
    process of its own: an embedded Ray starts only where none is up."""
    proc = subprocess.run([sys.executable, "-c", HEAD_START, str(tmp_path)], cwd=ROOT / "tests", capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {k: e for k, (e, _) in out["ran"].items()} == {"0": "driver", "1": "ray", "2": "ray"}, out
    assert all((tmp_path / name).is_file() for _, name in out["ran"].values())
    assert out["ray_started"] and out["put_once"]  # the detections were put once, for Ray's two


@pytest.mark.render
def test_the_driver_alone_renders_tasks_side_by_side_and_makes_the_video_ray_makes(tmp_path):
    """Without Ray the driver runs its tasks on a thread per CPU: they overlap in time, and the
    video is the one Ray's workers make from the same tasks."""
    split_small = ("render.max_frames_per_task=7", "ray.num_cpus=2", "detector=saliency")
    here = run_cli("--config-dir", "tests/conf", "+job=fixture", *split_small, f"hydra.run.dir={tmp_path / 'here'}")
    assert here.returncode == 0, here.stderr[-2000:]
    on_ray = run_cli("--config-dir", "tests/conf", "+job=fixture", *split_small, "ray.min_saving_s=0",
                     "render.cache=false", f"hydra.run.dir={tmp_path / 'ray'}")
    assert on_ray.returncode == 0, on_ray.stderr[-2000:]
    a, b = read_report(tmp_path / "here"), read_report(tmp_path / "ray")
    assert not a["ray_started"] and b["ray_started"] and a["tasks"] == b["tasks"] == 22
    assert a["frames_rendered_by_the_driver"] == FIXTURE_FRAMES
    spans = sorted((r["started"], r["started"] + r["seconds"]) for r in a["segment_runs"])
    assert any(s1 < e0 for (_, e0), (s1, _) in zip(spans, spans[1:])), spans  # two tasks at once
    assert np.array_equal(media.decode_all(a["output"]), media.decode_all(b["output"]))


@pytest.mark.render
def test_a_task_failing_in_the_driver_stops_the_others_and_leaves_nothing(tmp_path, cache_dir):
    import cv2

    from raypipe.storage import TMP_MARK

    photo = tmp_path / "coffee.png"
    cv2.imwrite(str(photo), cv2.cvtColor(load_image("sample:coffee"), cv2.COLOR_RGB2BGR))
    # The photo goes after validation and its detection, before the tasks read it (in the
    # driver): detections stream, so it goes as the stream hears of it and lets its tasks go.
    script = ("import sys, pathlib, raypipe.engine.streaming as s\n"
              "photo, real = pathlib.Path(sys.argv[1]), s.SourceStream.heard\n"
              "def lose(self, uri, found):\n    if uri == str(photo):\n        photo.unlink()\n"
              "    return real(self, uri, found)\n"
              "s.SourceStream.heard = lose\n"
              "sys.argv = ['raypipe', 'render', *sys.argv[2:]]\n"
              "import runpy\nrunpy.run_module('raypipe', run_name='__main__', alter_sys=True)\n")
    output = tmp_path / "out" / "video.mp4"
    proc = subprocess.run([sys.executable, "-c", script, str(photo), "--config-dir", "tests/conf", "+job=fixture",
                           "detector=saliency", "render.max_frames_per_task=7", "ray.num_cpus=2",
                           f"job.segments.3.source={photo}", f"job.output={output}",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == f"error: no such file: {photo}", proc.stderr
    assert not output.exists() and not list(tmp_path.rglob("*.mp4")) and not (tmp_path / "run" / "report.json").exists()
    assert not [p for p in cache_dir.rglob("*") if TMP_MARK in p.name]  # no half chunk in the cache


@pytest.mark.slow
def test_ray_starts_only_where_its_workers_beat_the_drivers_threads_by_more_than_its_start(tmp_path):
    """On 2 CPUs the driver's threads are as fast as an embedded Ray for every bundled job
    (measured: `bench local`); with 16, Ray's workers pay for its start on the larger jobs."""
    from raypipe.plan.cost import frames_per_task, ordered_tasks, worth_starting_ray

    def on_ray(job, slots, *extra):
        cfg = compose_job(*extra, job=job)
        plan, _ = prepare(cfg, str(tmp_path / job))
        tasks = ordered_tasks(plan, frames_per_task(plan, cfg, slots))
        return worth_starting_ray(tasks, plan.encode, slots, cfg.ray.min_saving_s)

    jobs = ("demo", "one_long", "portrait", "bench")
    assert not any(on_ray(job, 2) for job in jobs)
    assert [on_ray(job, 16) for job in jobs] == [False, False, True, True]
    assert on_ray("fixture", 2, "ray.min_saving_s=0")  # 0: Ray whenever there is a frame to render
    one_long_task = ("render.max_frames_per_task=null", "job.segments=[{source: 'sample:coffee', duration: 60.0}]")
    assert not on_ray("fixture", 64, *one_long_task)  # a minute of work, but one task: nothing side by side


@pytest.mark.render
def test_a_photo_larger_than_its_shot_needs_is_decoded_smaller_and_renders_as_the_whole_does(tmp_path, monkeypatch):
    """A 12-megapixel JPEG in a 640x360 ken_burns shot: each task decodes it at half its size
    (its closest view still has a source pixel per output pixel), with the same frames as a
    whole decode within JPEG's rounding; a zoom_through transition, which flies 3x closer,
    keeps the whole photo."""
    import cv2

    import raypipe.engine.task as task

    photo = cv2.resize(load_image("sample:astronaut"), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    photo = cv2.add(photo, np.random.default_rng(1).integers(0, 20, photo.shape, dtype=np.uint8))  # fine detail
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), photo[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    decoded = []
    sized = task.load_image_sized

    def spy(uri, counter=None, at_least=None):
        image, full = sized(uri, counter, at_least)
        decoded.append((uri, image.shape[:2]))
        return image, full

    monkeypatch.setattr(task, "load_image_sized", spy)
    for transition, shape in (("crossfade", (1500, 2000)), ("zoom_through", (3000, 4000))):
        cfg = compose_job("detector=saliency", "render.width=640", "render.height=360", "render.fps=10",
                          f"job.segments=[{{source: {path}, duration: 1.0, effect: ken_burns, transition: "
                          f"{{type: {transition}, duration: 0.5}}}}, {{source: 'sample:coffee', duration: 1.0}}]")
        plan, _ = prepare(cfg, str(tmp_path / "run"), {})
        found, _ = detect_all(OmegaConf.to_object(cfg.detector), plan.sources, plan.prompts)
        detections = Detections.pack(expand(found))
        seg = plan.segments[0]
        decoded.clear()
        frames = np.stack(list(segment_frames(seg, detections, plan.encode)))
        assert [s for uri, s in decoded if uri == str(path)] == [shape]
        monkeypatch.setattr(task, "load_image_sized", lambda uri, counter=None, at_least=None: sized(uri, counter))
        whole = np.stack(list(segment_frames(seg, detections, plan.encode)))
        monkeypatch.setattr(task, "load_image_sized", spy)
        diff = np.abs(frames.astype(int) - whole)
        assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 4, (transition, diff.mean(), diff.max())
