"""Segments of any length render: 1 to 5 frames between longer shots, first, last and side by
side, with and without transitions, from the cache and without it, at the usual rates.

x264 decodes 2 frames behind its pictures only in a chunk of 3 frames or more, so short
chunks once failed the join; a duration of 1/60 s once planned no frame after a boundary
half a frame in."""
from fractions import Fraction

import av
import numpy as np
import pytest
from omegaconf import OmegaConf

import raypipe
from raypipe import media
from raypipe.api import config
from raypipe.detection.detections import Detections
from raypipe.detection.detector import detect_all, expand
from raypipe.engine.task import segment_frames
from raypipe.plan.timeline import plan as plan_job
from raypipe.plan.validate import prepare

FPS = ["24000/1001", "25", "30", "60"]
# Frames per segment: short ones first, last, side by side and between 8-frame shots that
# move (ken_burns), so a frame that a join drops, repeats or shifts shows.
LAYOUT = [1, 8, 2, 1, 8, 3, 8, 4, 5, 8, 1]
PHOTOS = ["colorwheel", "immunohistochemistry", "rocket", "coffee", "camera", "cat"]
KINDS = ["crossfade", "wipe", "fade_black", "zoom_through"]
# Small and quick. CRF 12: at CRF 18, H.264's 4:2:0 takes these detailed photos at 160x90 down to 30 dB.
SMALL = ["render.width=160", "render.height=90", "render.crf=12", "detector=saliency", "detector.faces=false"]


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def short_job(fps: Fraction, transitions: bool) -> dict:
    """LAYOUT as durations of exactly k/fps seconds; a short segment is a still photo of its own,
    a long one a moving shot. With transitions, each segment leaves through one of half its
    frames (a 1-frame segment through a 1-frame transition)."""
    segments, photos = [], iter(PHOTOS * 3)
    for i, frames in enumerate(LAYOUT):
        long = frames == 8
        seg = {"source": f"sample:{'astronaut' if i % 2 else 'chelsea'}" if long else f"sample:{next(photos)}",
               "duration": float(frames / fps), "effect": "ken_burns" if long else "static"}
        if transitions and i < len(LAYOUT) - 1:
            seg["transition"] = {"type": KINDS[i % len(KINDS)], "duration": float(max(1, frames // 2) / fps)}
        segments.append(seg)
    return {"job": {"name": "short", "segments": segments}, "render": {"fps": str(fps)}}


def raw_frames(cfg, run_root) -> np.ndarray:
    """Every global frame as segment_frames renders it, before any encoding."""
    plan, _ = prepare(cfg, str(run_root))
    found, _ = detect_all(OmegaConf.to_object(cfg.detector), plan.sources, plan.prompts, plan.video_ranges())
    detections = Detections.pack(expand(found), smoothing=cfg.detector.track_smoothing)
    return np.stack([f for seg in plan.segments for f in segment_frames(seg, detections, plan.encode)])


def assert_each_frame_is_its_own(video: str, raw: np.ndarray, fps: Fraction) -> None:
    decoded = media.decode_all(video)
    assert media.count_frames(video) == len(decoded) == len(raw)
    with av.open(video) as container:
        stream = container.streams.video[0]
        shown = sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.size)
    # Frame k shows at k/fps: WebM's whole milliseconds round each chunk's start and each
    # frame in it, under 1 ms together, and nothing drifts from chunk to chunk.
    assert np.abs(np.array(shown) - np.arange(len(raw)) / float(fps)).max() < 1e-3
    scores = np.array([psnr(d, r) for d, r in zip(decoded, raw)])
    assert scores.min() >= 30.0 and scores.mean() >= 35.0, (int(scores.argmin()), scores.min(), scores.mean())
    # Nearer its own frame than any other that differs from it by more than the codec's
    # error: a flash frame lands exactly at its index, and nothing shifts around it.
    for k, d in enumerate(decoded):
        others = [j for j in range(len(raw)) if j != k and psnr(raw[j], raw[k]) < 30.0]
        assert all(scores[k] > psnr(d, raw[j]) for j in others), k


@pytest.mark.render
@pytest.mark.parametrize("transitions", [False, True], ids=["cuts", "transitions"])
@pytest.mark.parametrize("fps", FPS)
def test_segments_of_one_to_five_frames_render_frame_exact(tmp_path, fps, transitions):
    cache = transitions  # each rate renders once with the cache (twice: the second from it), once without
    overrides = [*SMALL, f"render.cache={str(cache).lower()}"]
    job = short_job(Fraction(fps), transitions)
    cfg = config(job, overrides)
    planned = [seg.frames for seg in prepare(cfg, str(tmp_path))[0].segments]
    assert planned == LAYOUT
    raw = raw_frames(cfg, tmp_path)
    first = raypipe.render(job, overrides, run_dir=tmp_path / "first")
    assert first.report["frames"] == sum(LAYOUT)
    assert_each_frame_is_its_own(first.video, raw, Fraction(fps))
    if cache:  # the same job again: every chunk comes from the cache and joins alike
        again = raypipe.render(job, overrides, run_dir=tmp_path / "again")
        assert again.report["cache"]["chunks_reused"] == again.report["chunks"] == len(LAYOUT)
        assert again.report["tasks"] == 0  # every chunk from the cache
        assert np.array_equal(media.decode_all(again.video), media.decode_all(first.video))


@pytest.mark.render
def test_short_chunks_split_from_longer_segments_join(tmp_path):
    """max_frames_per_task=3 cuts the longer segments into chunks of 2 and 3 frames, so
    chunks that decode in step with their pictures alternate with ones that lag."""
    overrides = [*SMALL, "render.cache=false", "render.max_frames_per_task=3"]
    fps = Fraction(30)
    job = short_job(fps, transitions=True)
    result = raypipe.render(job, overrides, run_dir=tmp_path)
    sizes = [r["frames"] for r in sorted(result.report["segment_runs"], key=lambda r: r["start"])]
    assert sizes == [1, 2, 3, 3, 2, 1, 2, 3, 3, 3, 2, 3, 3, 2, 2, 2, 3, 2, 3, 3, 1]
    assert_each_frame_is_its_own(result.video, raw_frames(config(job, overrides), tmp_path), fps)


@pytest.mark.unit
@pytest.mark.parametrize("fps", [*FPS, "30000/1001", "50"])
def test_a_duration_of_k_frames_plans_k_frames_wherever_it_starts(fps):
    """Durations written as k/fps (a float that no decimal writes exactly) after a first
    segment that ends on a half frame, the boundary where rounding is closest to a tie."""
    rate = Fraction(fps)
    for lead in (Fraction(1, 2), Fraction(3, 2), Fraction(15, 2)):
        job = {"name": "k", "segments": [{"source": "sample:astronaut", "duration": float(lead / rate)}]
               + [{"source": "sample:coffee", "duration": float(k / rate)} for k in (1, 2, 1, 3, 4, 5, 1)]}
        cfg = config(job, [*SMALL, f"render.fps={fps}"])
        frames = [seg.frames for seg in plan_job(cfg.job, cfg.render).segments]
        assert frames[1:] == [1, 2, 1, 3, 4, 5, 1], (lead, frames)


@pytest.mark.render
@pytest.mark.parametrize("codec", ["vp9", "prores"])
def test_short_segments_join_in_the_codecs_without_b_frames(tmp_path, codec):
    """VP9's WebM counts in whole milliseconds, which 23.976 fps frames are not; ProRes and
    VP9 decode in step with their pictures, in a chunk of any length."""
    overrides = [*SMALL, "render.cache=false", f"render.codec={codec}"]
    fps = Fraction(24000, 1001)
    job = short_job(fps, transitions=True)
    result = raypipe.render(job, overrides, run_dir=tmp_path)
    assert_each_frame_is_its_own(result.video, raw_frames(config(job, overrides), tmp_path), fps)
