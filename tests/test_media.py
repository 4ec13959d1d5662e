"""Video ranges, codecs and sound: real encoders, real decoded frames and samples."""
import math
import subprocess
import wave
from dataclasses import replace

import numpy as np
import pytest

from conftest import FFMPEG, compose_job, render
from raypipe import media
from raypipe.api import config
from raypipe.config import ASSETS
from raypipe.errors import JobError
from raypipe.media import keyframes, probe, read_frames
from raypipe.media.audio import RATE, Normalize, mix
from raypipe.plan.timeline import plan
from raypipe.plan.validate import prepare
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


def wav(path, samples: np.ndarray) -> str:
    """A stereo 16-bit WAV at 48 kHz of the mono float `samples`."""
    pcm = np.round(np.repeat(samples[:, None], 2, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(pcm.tobytes())
    return str(path)


def tracked(tracks, seconds=2.0, **audio):
    """The plan of `seconds` of a card with these job.audio.tracks and no soundtrack."""
    cfg = config({"job": {"name": "tracks", "segments": [{"source": "color:#000000", "duration": seconds}],
                          "audio": {"path": None, "tracks": tracks, **audio}}},
                 ["render.width=64", "render.height=36", "render.fps=12", "detector=saliency"])
    return plan(cfg.job, cfg.render)


@pytest.mark.unit
def test_a_track_is_mixed_at_its_start_scaled_by_its_volume_and_cut_where_it_says(tmp_path):
    # Two steps of a constant level, so that every sample says where in the file it came from:
    # 0.25 in its first second, 0.5 in its second.
    steps = wav(tmp_path / "steps.wav", np.repeat(np.float32([0.25, 0.5]), RATE))
    planned = tracked([{"path": steps, "start": 0.5, "cut_from": 1.0, "cut_to": 1.5, "volume": 0.5},
                       {"path": steps, "start": 1.5, "volume": 2.0}])  # to the video's end
    out = mix(planned.audio, planned.duration)
    assert out.shape == (2, 2 * RATE) and (out[0] == out[1]).all()
    x, at = out[0], lambda t: round(t * RATE)
    assert not x[:at(0.5)].any() and np.flatnonzero(x)[0] - at(0.5) <= 1  # nothing before its start
    # The file's 1.0..1.5 s (0.5) at volume 0.5, ramped in and out over 50 ms, then nothing:
    # cut at cut_to, where the file goes on.
    assert np.allclose(x[at(0.55):at(0.95)], 0.25, atol=1e-4)
    assert not x[at(1.0):at(1.5)].any()
    # The second from the file's start (0.25) at volume 2, cut at the video's end.
    assert np.allclose(x[at(1.55):at(1.95)], 0.5, atol=1e-4)


@pytest.mark.unit
def test_normalize_raises_a_quiet_mix_by_at_most_max_gain_and_gain_sets_its_level(tmp_path):
    t = np.arange(4 * RATE) / RATE
    quiet = wav(tmp_path / "quiet.wav", 0.01 * np.sin(2 * np.pi * 440 * t))
    audio = tracked([{"path": quiet}], 4.0).audio
    plain = mix(audio, 4.0)
    louder = mix(replace(audio, normalize=Normalize(3, 20.0)), 4.0)
    assert louder.shape == plain.shape == (2, 4 * RATE)
    # dynaudnorm aims at a 0.95 peak, 95x here, held to max_gain; its gain eases in and out over
    # the window's frames (500 ms each) at the ends, so the middle is measured.
    middle = slice(round(1.5 * RATE), round(2.5 * RATE))
    ratio = np.sqrt((louder[:, middle] ** 2).mean() / (plain[:, middle] ** 2).mean())
    assert 19 < ratio <= 20.01, ratio
    assert np.allclose(mix(replace(audio, gain=0.5), 4.0), plain * 0.5)
    assert tracked([], 4.0, normalize={"enable": True, "window": 3, "max_gain": 100}).audio.normalize == \
        Normalize(3, 100.0)


@pytest.mark.unit
@pytest.mark.parametrize("track,where", [
    ({"cut_from": 1.0, "cut_to": 1.0}, "job.audio.tracks[0].cut_to"),
    ({"start": 2.0}, "job.audio.tracks[0].start"),
    ({"volume": -1}, "job.audio.tracks[0].volume"),
    ({"speed": 0}, "job.audio.tracks[0].speed"),
])
def test_a_bad_track_fails_in_one_line_naming_its_key(track, where):
    with pytest.raises(JobError) as e:
        tracked([{"path": "song.wav", **track}])
    assert e.value.where == where and "\n" not in str(e.value), str(e.value)


@pytest.mark.unit
def test_a_missing_track_fails_before_any_work_naming_its_path(tmp_path):
    ok = wav(tmp_path / "ok.wav", np.zeros(RATE, np.float32))
    cfg = config({"job": {"name": "tracks", "segments": [{"source": "color:#000000", "duration": 1.0}],
                          "audio": {"path": None, "tracks": [{"path": ok}, {"path": str(tmp_path / "gone.m4a")}]},
                          "output": str(tmp_path / "out.mp4")}}, ["detector=saliency"])
    with pytest.raises(JobError) as e:
        prepare(cfg, str(tmp_path / "run"))
    assert str(e.value).startswith("job.audio.tracks[1].path: ") and "gone.m4a" in str(e.value)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.unit
def test_a_tracks_relative_path_is_taken_from_the_job_files_folder_as_the_soundtracks(tmp_path):
    (tmp_path / "job.yaml").write_text("job:\n  name: trip\n  audio:\n    path: music/song.m4a\n"
                                       "    tracks: [{path: voice/over.m4a, start: 1.0}]\n"
                                       "  segments: [{source: 'color:#000000', duration: 2.0}]\n")
    audio = config(tmp_path / "job.yaml").job.audio
    assert (audio.path, audio.tracks[0].path) == (str(tmp_path / "music/song.m4a"), str(tmp_path / "voice/over.m4a"))
