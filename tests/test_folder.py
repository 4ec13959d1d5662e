"""A folder renders as it is: `python -m raypipe render photos/` plans a job from the
folder's photos and clips, renders it, and writes the job beside the video."""
import os
import subprocess

import numpy as np
import pytest
import skimage.data
import yaml
from PIL import Image

import raypipe
from raypipe.errors import ConfigError
from raypipe.media import count_frames
from raypipe.media.audio import duration as soundtrack_duration
from raypipe.plan.folder import CROSSFADE, PHOTO_SECONDS, Source, media_names, plan_folder
from tests.conftest import FFMPEG, read_report, run_cli

SMALL = ["render.width=160", "render.height=90", "render.fps=10", "detector=saliency"]
SOUNDTRACK = str(raypipe.api.CONF.parent / "assets" / "demo_soundtrack.m4a")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(np.ascontiguousarray(np.rot90(skimage.data.chelsea()))).save(folder / "img10.jpg")  # portrait
    Image.fromarray(skimage.data.coffee()).save(folder / "img2.png")
    Image.fromarray(skimage.data.astronaut()).save(folder / "img3.jpg")  # a face
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=10:duration=1.5",
                    "-pix_fmt", "yuv420p", str(folder / "clip1.mp4")], check=True)
    (folder / "notes.txt").write_text("not a photo")
    return folder


def frames_of(job: dict, fps: int = 10) -> int:
    return round(sum(s["duration"] for s in job["segments"]) * fps)


@pytest.mark.unit
def test_photos_and_clips_in_natural_order_and_nothing_else():
    assert media_names(["img10.jpg", "notes.txt", "IMG2.PNG", "clip1.mp4", "img1.jpeg", ".DS_Store"]) == [
        "clip1.mp4", "img1.jpeg", "IMG2.PNG", "img10.jpg"]


@pytest.mark.unit
def test_effects_follow_each_source():
    sources = [Source("tall.jpg", 300, 500), Source("face.jpg", 512, 512, face=True), Source("a.jpg", 640, 480),
               Source("b.jpg", 640, 480), Source("c.jpg", 640, 480), Source("tall.mp4", 180, 320, seconds=3.0)]
    job = plan_folder("f", sources, 1280, 720, "30")["job"]
    assert [s["effect"] for s in job["segments"]] == ["reframe", "punch_in", "ken_burns", "pan", "ken_burns",
                                                      "reframe"]
    portrait = plan_folder("f", sources, 720, 1280, "30")["job"]
    assert [s["effect"] for s in portrait["segments"]][:3] == ["ken_burns", "punch_in", "reframe"]


@pytest.mark.unit
def test_without_a_soundtrack_photos_get_the_default_and_clips_their_length_capped():
    sources = [Source("a.jpg", 640, 480), Source("long.mp4", 320, 180, seconds=60.0),
               Source("short.mp4", 320, 180, seconds=2.0), Source("b.jpg", 640, 480)]
    segments = plan_folder("f", sources, 1280, 720, "30")["job"]["segments"]
    # A crossfade into a clip shows its head: the clip's duration leaves that part out.
    assert [s["duration"] for s in segments] == [PHOTO_SECONDS, 5.0, 2.0 - CROSSFADE, PHOTO_SECONDS]
    assert [s.get("transition") for s in segments] == [{"type": "crossfade", "duration": CROSSFADE}] * 3 + [None]


@pytest.mark.unit
def test_a_clip_shorter_than_two_crossfades_gets_shorter_ones():
    sources = [Source("a.jpg", 640, 480), Source("blink.mp4", 320, 180, seconds=0.6), Source("b.jpg", 640, 480)]
    segments = plan_folder("f", sources, 1280, 720, "30")["job"]["segments"]
    assert [s["transition"]["duration"] for s in segments[:2]] == [0.3, 0.15]
    assert segments[1]["duration"] == 0.3  # with the 0.3 s shown under the first crossfade: the whole clip


@pytest.mark.unit
def test_with_a_soundtrack_the_photos_share_what_the_clips_leave():
    sources = [Source("a.jpg", 640, 480), Source("c.mp4", 320, 180, seconds=4.0), Source("b.jpg", 640, 480)]
    job = plan_folder("f", sources, 1280, 720, "30", "/music.m4a", 16.0)["job"]
    assert [s["duration"] for s in job["segments"]] == [6.25, 3.5, 6.25]
    assert job["audio"]["path"] == "/music.m4a"


@pytest.mark.unit
def test_a_folder_without_photos_or_clips_is_an_error_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=f"^{tmp_path}: no photos or videos in this folder"):
        raypipe.api.config(tmp_path)


@pytest.mark.render
def test_a_folder_renders_and_its_written_job_renders_the_same(photos, tmp_path):
    run = tmp_path / "outputs"
    result = run_cli(str(photos), *SMALL, f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = run / "job.yaml"
    assert f"render it again with `python -m raypipe render {written}`" in result.stdout
    job = yaml.safe_load(written.read_text())["job"]
    # In name order, the text file left out; relative to the job file, as a user writes them.
    assert [s["source"] for s in job["segments"]] == [
        os.path.relpath(photos / n, run) for n in ("clip1.mp4", "img2.png", "img3.jpg", "img10.jpg")]
    assert [s["effect"] for s in job["segments"]] == ["static", "ken_burns", "punch_in", "reframe"]
    assert [s["duration"] for s in job["segments"]] == [1.5, PHOTO_SECONDS, PHOTO_SECONDS, PHOTO_SECONDS]
    assert count_frames(read_report(run)["output"]) == frames_of(job) == 90

    again = raypipe.render(written, ["detector=saliency"], run_dir=tmp_path / "again")
    assert count_frames(again.video) == frames_of(job)


@pytest.mark.render
def test_a_folder_with_a_soundtrack_lasts_as_long_as_it(photos, tmp_path):
    result = raypipe.render(photos, [*SMALL, f"job.audio.path={SOUNDTRACK}"], run_dir=tmp_path / "run")
    job = yaml.safe_load((tmp_path / "run" / "job.yaml").read_text())["job"]
    assert job["audio"]["path"] == SOUNDTRACK
    assert soundtrack_duration(SOUNDTRACK) == 16.0  # as ffprobe says
    assert abs(count_frames(result.video) - 160) <= 1
