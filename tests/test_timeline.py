"""The planner: exact global frame ranges, transitions owned by one segment."""
import re
from fractions import Fraction

import pytest
from omegaconf import OmegaConf

from raypipe.config import Config
from raypipe.timeline import JobError, plan


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
