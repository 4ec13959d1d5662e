"""The planner: exact global frame ranges, transitions owned by one segment."""
import re
from fractions import Fraction

import pytest
from omegaconf import OmegaConf

from raypipe.config import Config
from raypipe.plan.timeline import JobError, plan

pytestmark = pytest.mark.unit


def job(durations, fps="30", transitions=None, effect="static"):
    segments = [
        {"source": f"sample:{n}", "duration": d, "effect": effect,
         "transition": (transitions or {}).get(i, {"type": "cut", "duration": 0})}
        for i, (n, d) in enumerate(zip(["astronaut", "chelsea", "coffee", "rocket"] * 5, durations))
    ]
    cfg = OmegaConf.merge(OmegaConf.structured(Config), {"render": {"fps": fps}, "job": {"segments": segments}})
    return plan(cfg.job, cfg.render)


def test_boundaries_use_cumulative_rounding_and_cover_every_frame_once():
    p = job([0.7, 0.7, 0.7], fps="24")  # 16.8 frames each: per-segment rounding would drift
    assert p.total_frames == round(2.1 * 24) == 50
    assert [(s.start, s.end) for s in p.segments] == [(0, 17), (17, 34), (34, 50)]
    covered = [k for s in p.segments for k in range(s.start, s.end)]
    assert covered == list(range(p.total_frames))


def test_ntsc_rate_gives_exact_frame_count():
    p = job([10.0, 10.0, 10.01], fps="30000/1001")
    assert p.encode.fps == Fraction(30000, 1001)
    assert p.total_frames == round(30.01 * 30000 / 1001)
    assert sum(s.frames for s in p.segments) == p.total_frames


def test_transition_belongs_to_the_segment_it_leaves_and_the_next_shot_runs_on():
    p = job([1.0, 1.0], fps="30", transitions={0: {"type": "crossfade", "duration": 0.5}})
    first, second = p.segments
    assert (first.start, first.end) == (0, 30) and (second.start, second.end) == (30, 60)
    tr = first.transition
    assert (tr.start, tr.frames) == (15, 15)
    assert tr.into == second.shot  # the same shot, so both tasks render it identically
    assert second.shot.span_start == 15 and second.shot.span_frames == 45
    # the incoming shot's progress is continuous across the task boundary
    assert tr.into.progress(29) < second.shot.progress(30)
    assert second.shot.progress(30) - tr.into.progress(29) == pytest.approx(1 / 44)
    # crossfade weights never reach either side: those are the neighbouring frames
    assert 0 < tr.alpha(15) < tr.alpha(29) < 1
    assert tr.alpha(15) + tr.alpha(29) == pytest.approx(1.0)


@pytest.mark.parametrize("durations,transitions,field", [
    ([1.0, 0.0], None, "job.segments[1].duration"),
    ([1.0, -2.0], None, "job.segments[1].duration"),
    ([1.0, 0.001], None, "job.segments[1].duration"),  # shorter than a frame
    ([1.0, 1.0], {0: {"type": "crossfade", "duration": 1.5}}, "job.segments[0].transition.duration"),
    ([1.0, 1.0], {1: {"type": "crossfade", "duration": 0.5}}, "job.segments[1].transition"),
    ([1.0], {0: {"type": "spin", "duration": 0.5}}, "job.segments[0].transition.type"),
])
def test_bad_timelines_name_the_field(durations, transitions, field):
    with pytest.raises(JobError, match="^" + re.escape(field) + ": "):
        job(durations, transitions=transitions)


@pytest.mark.parametrize("fps", ["0", "-24", "abc", "1/0"])
def test_bad_fps(fps):
    with pytest.raises(JobError, match=r"^render\.fps: "):
        job([1.0], fps=fps)


def video_plan(segment: dict, before: dict | None = None, fps="30"):
    """A plan with a 10 s video (probed by a stand-in) after an optional still."""
    from raypipe.media import MediaInfo

    segments = ([before] if before else []) + [{"source": "/clips/surf.mp4", **segment}]
    cfg = OmegaConf.merge(OmegaConf.structured(Config), {"render": {"fps": fps}, "job": {"segments": segments}})
    return plan(cfg.job, cfg.render, probe=lambda uri: MediaInfo(10.0, 25.0, 640, 360, audio=True))


def test_a_video_without_a_duration_plays_its_range_once_lead_in_included():
    still = {"source": "sample:astronaut", "duration": 1.0, "transition": {"type": "crossfade", "duration": 0.5}}
    p = video_plan({"start": 2.0, "end": 6.0, "speed": 2.0}, before=still)
    shot = p.segments[1].shot
    # 4 s of video at speed 2 is 2 s on screen, 0.5 s of it under the crossfade.
    assert p.total_frames == 30 + 45 and shot.span_frames == 60
    assert shot.source_time(shot.span_start) == 2.0
    assert shot.source_time(shot.span_start + shot.span_frames - 1) == pytest.approx(2.0 + 2 * 59 / 30)
    assert p.video_ranges() == {"/clips/surf.mp4": ((2.0, pytest.approx(2.0 + 2 * 59 / 30)),)}


def test_a_videos_sound_is_placed_where_its_shot_plays():
    still = {"source": "sample:astronaut", "duration": 1.0, "transition": {"type": "crossfade", "duration": 0.5}}
    p = video_plan({"start": 1.0, "duration": 2.0, "audio": "keep", "audio_volume": 0.5}, before=still)
    (clip,) = p.audio.clips
    assert (clip.source_start, clip.at, clip.seconds, clip.volume, clip.keep) == (1.0, 0.5, 2.5, 0.5, True)


@pytest.mark.parametrize("segment,field", [
    ({"end": 12.0}, "job.segments[0].end"),  # past the end of the file
    ({"start": 10.5}, "job.segments[0].start"),
    ({"start": 5.0, "end": 4.0}, "job.segments[0].end"),
    ({"start": 8.0, "duration": 3.0}, "job.segments[0].duration"),  # needs more video than is left
    ({"speed": 0}, "job.segments[0].speed"),
    ({"audio": "loud"}, "job.segments[0].audio"),
])
def test_bad_video_trims_name_the_field(segment, field):
    with pytest.raises(JobError, match="^" + re.escape(field) + ": "):
        video_plan(segment)


def test_video_fields_on_an_image_are_refused():
    cfg = OmegaConf.merge(OmegaConf.structured(Config),
                          {"job": {"segments": [{"source": "sample:coffee", "duration": 1.0, "speed": 2.0}]}})
    with pytest.raises(JobError, match=r"^job\.segments\[0\]\.speed: applies to video sources only"):
        plan(cfg.job, cfg.render)


def test_a_caption_is_added_from_the_command_line_and_an_empty_one_is_none():
    """`job.segments.N.caption.text=...` adds a caption to a segment that had none (every
    segment has the caption's node, so the override has somewhere to go)."""
    from conftest import compose_job

    cfg = compose_job("job.segments.0.caption.text=Added", "job.segments.3.caption.text= ")
    p = plan(cfg.job, cfg.render)
    added = p.segments[0].caption
    assert added is not None and added.rgba.shape[2] == 4 and added.rgba[..., 3].max() == 255  # drawn text
    assert p.segments[3].caption is None and p.segments[1].caption is None
