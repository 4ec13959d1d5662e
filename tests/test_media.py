"""Video ranges, codecs and sound: real encoders, real decoded frames and samples."""
import math
import subprocess

import numpy as np
import pytest

from conftest import FFMPEG, compose_job, render
from raypipe import media
from raypipe.config import ASSETS
from raypipe.media import keyframes, probe, read_frames
from test_render import FIXTURE_FRAMES, psnr, render_single_process

CLIP = str(ASSETS / "demo_clip.mp4")


@pytest.mark.unit
def test_a_range_decodes_to_the_same_frames_as_the_whole_clip():
    whole = list(read_frames(CLIP, 0.0, 1.0, 30, 60))
    assert len(whole) == 60
    part = list(read_frames(CLIP, 1.0, 1.0, 30, 10))  # what a task showing 1.0 s on decodes
    assert all(np.array_equal(a, b) for a, b in zip(part, whole[30:40]))
    fast = list(read_frames(CLIP, 0.0, 2.0, 30, 10))  # speed 2: every other source frame
    assert all(np.array_equal(a, b) for a, b in zip(fast, whole[0:20:2]))


@pytest.mark.unit
def test_keyframes_sample_the_requested_range_at_the_requested_rate():
    info = probe(CLIP)
    assert (info.width, info.height, info.fps, info.audio) == (960, 540, 30.0, True)
    frames = list(keyframes(CLIP, [(0.5, 3.5)], 2.0))
    assert [t for t, _ in frames] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    whole = list(read_frames(CLIP, 0.0, 1.0, 30, 120))
    assert np.array_equal(frames[2][1], whole[45])
    # Spans apart are sampled each from its own start, and the seeks between them land on
    # the very frames that decoding straight through shows; 2.95 s lies between the key
    # frame's decode time (2.933 s) and the time it shows (3.0 s: the clip has B-frames).
    apart = list(keyframes(CLIP, [(0.2, 0.7), (2.95, 2.95), (3.55, 3.55)], 2.0))
    assert [t for t, _ in apart] == [0.2, 0.7, 2.95, 3.55]
    assert all(np.array_equal(img, whole[math.floor(t * 30)]) for t, img in apart)


@pytest.mark.render
def test_the_subject_of_a_video_is_tracked_across_keyframes(ray_local, tmp_path):
    report = render(compose_job("detector=saliency"), str(tmp_path))
    clip = next(d for d in report["detections"] if d["source"] == CLIP)
    assert clip["keyframes"] >= 3 and clip["seconds"][0] == 1.0


def codec_of(path):
    err = subprocess.run([FFMPEG, "-hide_banner", "-i", path], capture_output=True, text=True).stderr
    return [line for line in err.splitlines() if "Video:" in line][0].split("Video:")[1].split()[0]


@pytest.fixture(scope="module")
def raw_fixture(tmp_path_factory):
    """The fixture's frames as rendered, before any encoding."""
    from raypipe.engine.task import segment_frames

    plan, detections, _ = render_single_process(compose_job("detector=saliency"), tmp_path_factory.mktemp("single"))
    return np.stack([f for seg in plan.segments for f in segment_frames(seg, detections, plan.encode)])


@pytest.mark.render
@pytest.mark.parametrize("codec,ext,name,floor", [("h265", ".mp4", "hevc", 30), ("vp9", ".webm", "vp9", 30),
                                                  ("prores", ".mov", "prores", 38)])
def test_other_codecs_give_every_frame_at_quality(ray_local, tmp_path, raw_fixture, codec, ext, name, floor):
    out = tmp_path / f"video{ext}"
    report = render(compose_job("detector=saliency", f"render.codec={codec}", f"job.output={out}"), str(tmp_path))
    assert codec_of(str(out)) == name
    assert media.count_frames(str(out)) == report["frames"] == FIXTURE_FRAMES and media.probe(str(out)).audio
    decoded = media.decode_all(str(out))
    scores = [psnr(a, b) for a, b in zip(decoded, raw_fixture)]
    assert len(decoded) == FIXTURE_FRAMES
    assert min(scores) >= floor - 5 and np.mean(scores) >= floor, (min(scores), np.mean(scores))
    assert not (tmp_path / "segments").exists()


def band_energy(path, lo_s, hi_s, hz=880.0):
    pcm = subprocess.run([FFMPEG, "-loglevel", "error", "-i", path, "-map", "0:a", "-ac", "1", "-ar", "48000",
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    x = np.frombuffer(pcm, np.float32)[int(lo_s * 48000):int(hi_s * 48000)]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 48000)
    return spectrum[(freqs > hz - 15) & (freqs < hz + 15)].sum() / spectrum.sum()


@pytest.mark.render
def test_a_clips_own_sound_is_mixed_under_the_soundtrack_only_where_it_plays(ray_local, tmp_path):
    # The fixture's clip plays from 1.5 s to 2.67 s with bells at 880 Hz.
    mixed = render(compose_job("detector=saliency"), str(tmp_path / "mix"))["output"]
    dropped = render(compose_job("detector=saliency", "job.segments.2.audio=drop"), str(tmp_path / "drop"))["output"]
    assert band_energy(mixed, 1.6, 2.6) > 3 * band_energy(dropped, 1.6, 2.6)
    assert band_energy(mixed, 3.2, 5.0) == pytest.approx(band_energy(dropped, 3.2, 5.0), rel=0.15)
