"""One render's detections stream: a segment's tasks on the driver's threads may start once the
sources it reads are in, but never before every caption is placed, since a caption that cannot
keep clear of a face stops the render before any frame."""
import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import compose_job, render
from raypipe.detection.detections import CompactSubject, Subject
from raypipe.engine.streaming import SourceStream
from raypipe.errors import JobError
from raypipe.plan.cost import ordered_tasks
from raypipe.plan.validate import prepare

NO_CAPTION = "job.segments.3.caption=null"  # the fixture's one caption


def planned(tmp_path, *overrides):
    cfg = compose_job("detector=saliency", *overrides)
    return prepare(cfg, str(tmp_path / "run"), {})[0]


def found(plan, uri, box=(20.0, 20.0, 60.0, 60.0), faces=()):
    """A still's detection as detect_all hands it on (a video's as keyframes at 0 s and 1 s)."""
    w, h = 320, 240
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    subject = CompactSubject.of(Subject(box, mask, 0.9, "saliency", (w, h), faces))
    return [(0.0, subject), (1.0, subject)] if uri in plan.video_ranges() else subject


@pytest.mark.unit
def test_a_segment_goes_as_soon_as_the_sources_it_reads_are_in(tmp_path):
    plan = planned(tmp_path, NO_CAPTION)
    stream = SourceStream(plan, 0.5)
    futures = {seg.index: stream.for_segment(seg) for seg in plan.segments}
    heard = set()
    for uri in plan.sources:
        stream.heard(uri, found(plan, uri))
        heard.add(uri)
        for seg in plan.segments:
            assert futures[seg.index].done() == (set(seg.sources) <= heard), (uri, seg.index)
    for seg in plan.segments:  # each holds its own sources, and only them
        assert futures[seg.index].result().keys == seg.sources


@pytest.mark.unit
def test_sources_are_detected_captions_first_then_the_cheapest_first(tmp_path):
    plan = planned(tmp_path)
    captioned = [seg for seg in plan.segments if seg.caption is not None]
    assert [seg.index for seg in captioned] == [3]
    clip = next(iter(plan.video_ranges()))
    tasks = ordered_tasks(plan, 10)
    order = SourceStream(plan, 0.5).order(tasks, 2.0)
    assert set(order[:len(captioned[0].sources)]) == set(captioned[0].sources)
    rest = order[len(captioned[0].sources):]
    # The stills before the clip (one image each, against one per keyframe), each as the tasks first read it.
    stills = [u for u in dict.fromkeys(u for t in tasks for u in t.segment.sources)
              if u not in captioned[0].sources and u != clip]
    assert list(rest) == [*stills, clip] and sorted(order) == sorted(plan.sources)
    # Without a caption, the clip too waits for the stills.
    plain = planned(tmp_path, NO_CAPTION)
    assert SourceStream(plain, 0.5).order(None, 2.0)[-1] == clip


@pytest.mark.unit
def test_no_segment_goes_before_every_caption_is_placed(tmp_path):
    plan = planned(tmp_path)
    stream = SourceStream(plan, 0.5)
    futures = [stream.for_segment(seg) for seg in plan.segments]
    captioned = plan.segments[3]
    for uri in [u for u in plan.sources if u not in captioned.sources]:
        stream.heard(uri, found(plan, uri))
    assert not any(f.done() for f in futures)  # every other source is in: the caption's are not
    for uri in captioned.sources:
        stream.heard(uri, found(plan, uri))
    assert all(f.done() and f.exception() is None for f in futures)
    assert captioned.caption.drawn  # placed and drawn here, before any task


@pytest.mark.unit
def test_a_caption_that_cannot_clear_a_face_fails_every_waiting_segment_with_its_error(tmp_path):
    plan = planned(tmp_path, "job.segments.3.caption.text='" + "A long caption that will not fit " * 6 + "'")
    stream = SourceStream(plan, 0.5)
    futures = [stream.for_segment(seg) for seg in plan.segments]
    face = (0.0, 0.0, 320.0, 240.0)  # a face fills the photograph
    for uri in plan.sources:
        stream.heard(uri, found(plan, uri, box=face, faces=(face,)))
    for f in futures:
        with pytest.raises(JobError, match=r"^job\.segments\[3\]\.caption: .*cannot keep clear of the face"):
            f.result()


@pytest.mark.unit
def test_a_detection_that_fails_fails_the_segments_still_waiting(tmp_path):
    plan = planned(tmp_path, NO_CAPTION)
    stream = SourceStream(plan, 0.5)
    first, *rest = plan.segments
    for uri in first.sources:
        stream.heard(uri, found(plan, uri))
    ready = stream.for_segment(first)
    error = JobError("job.segments[2].source", "corrupt")
    stream.fail(error)
    assert ready.result().keys == first.sources  # already handed out: unchanged
    waiting = [stream.for_segment(seg) for seg in rest if not set(seg.sources) <= set(first.sources)]
    assert waiting and all(f.exception() is error for f in waiting)


@pytest.mark.render
def test_the_first_task_starts_before_detection_ends(tmp_path):
    """On the driver's threads, with no caption to wait for: the costliest task starts once its
    sources are in, while the rest are still being detected."""
    cfg = compose_job("detector=saliency", NO_CAPTION, "render.max_frames_per_task=10")
    from raypipe.engine.threads import ThreadExecutor

    report = render(cfg, tmp_path / "run", executor=ThreadExecutor(2), quiet=True)
    stages = report["stages"]
    assert report["executor"] == "threads" and report["tasks"] > 0
    assert report["first_task_s"] < stages["validate"] + stages["cache_lookup"] + stages["detect"]
    assert OmegaConf.select(cfg, "job.segments.3.caption") is None


@pytest.mark.render
def test_two_files_of_the_same_photo_are_detected_once_and_both_segments_render(tmp_path):
    """The same photograph under two names (a user's copy): one detection, heard for both
    names, so that neither segment waits for ever."""
    import cv2

    from raypipe.api import config
    from raypipe.engine.threads import ThreadExecutor
    from raypipe.media import count_frames, load_image

    photo = cv2.cvtColor(load_image("sample:astronaut"), cv2.COLOR_RGB2BGR)
    for name in ("a.png", "copy of a.png"):
        cv2.imwrite(str(tmp_path / name), photo)
    job = {"name": "twins", "segments": [{"source": str(tmp_path / n), "duration": 1.0} for n in ("a.png", "copy of a.png")]}
    cfg = config(job, ["detector=saliency", "render.width=96", "render.height=54", "render.fps=10",
                       f"job.output={tmp_path / 'twins.mp4'}"])
    report = render(cfg, tmp_path / "run", executor=ThreadExecutor(2), quiet=True)
    assert count_frames(str(tmp_path / "twins.mp4")) == report["frames"] == 20
