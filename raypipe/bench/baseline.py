"""The yardsticks raypipe is measured against in `bench compare` (raypipe.bench.compare): the
design it replaced, rebuilt faithfully, and the same timeline as a plain MoviePy program.

- pool: a multiprocessing pool of one worker per CPU, each worker loading the detector
  itself while the driver detects too; masks reach the workers as Python lists at the
  source's size (`tolist()` and back, as the old driver sent them: this is the cost being
  measured, never a path of raypipe's own); each worker renders its segment through
  MoviePy, and MoviePy joins the segments with the sound at the end.
- moviepy: the timeline as an idiomatic single-process MoviePy 2 program, for what MoviePy
  can express; what it cannot is listed and replaced by a static shot or a cut.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager

import numpy as np


@contextmanager
def timed(stages: dict, name: str):
    t0 = time.perf_counter()
    yield
    stages[name] = round(time.perf_counter() - t0, 3)


def clip_seconds(frames: int, fps) -> float:
    """A MoviePy duration that yields exactly `frames` frames: MoviePy writes
    int(duration * fps) frames, and frames / fps in floating point comes out one short
    (123 frames at 30 fps make 122.99999999999999)."""
    return (frames + 0.5) / float(fps)


# ---- pool: the multiprocessing + MoviePy design raypipe replaced ---------------------------

# Each pool worker's own detector, held for the worker's life as the old workers held
# theirs: this is where their memory and start-up went, though no worker detects.
_WORKER_DETECTOR = None


def _load_detector(detector_cfg, prompts: tuple[str, ...], loads) -> None:
    """Pool initializer: the worker loads the configured detector (importing torch and
    trying CLIP, falling back to saliency where the job allows) and counts CLIP loads."""
    global _WORKER_DETECTOR
    import cv2

    from raypipe.detection.clip import ClipDetector, WeightsUnavailable
    from raypipe.detection.detector import SaliencyDetector
    from raypipe.detection.info import LoadCounter

    cv2.setNumThreads(1)  # one worker per CPU: parallelism comes from the workers
    counted = LoadCounter()
    if detector_cfg.kind == "clip":  # as the old workers did: import torch, try the weights, then fall back
        try:
            _WORKER_DETECTOR = ClipDetector(detector_cfg, counted)
            _WORKER_DETECTOR.text(prompts)  # as the old workers embedded theirs when they loaded
        except WeightsUnavailable:
            _WORKER_DETECTOR = SaliencyDetector()
    else:
        _WORKER_DETECTOR = SaliencyDetector()
    with loads.get_lock():
        loads.value += counted.count


def _as_lists(found):
    """A source's detections with every mask at the source's size as nested Python lists,
    as the old driver sent them."""
    import cv2

    if isinstance(found, list):  # a video's keyframes: [(seconds, subject), ...]
        return [(t, _as_lists(s)) for t, s in found]
    mask = cv2.resize(found.mask, found.source_size, interpolation=cv2.INTER_LINEAR)
    return found.box, mask.tolist(), found.score, found.method


def _from_lists(sent):
    from raypipe.detection.detections import Subject

    if isinstance(sent, list):
        return [(t, _from_lists(s)) for t, s in sent]
    box, mask, score, method = sent
    return Subject(tuple(box), np.array(mask, np.uint8), score, method)


class _FrameAt:
    """One segment's frames from raypipe's renderer as a MoviePy frame function of t.
    MoviePy asks for t = k / fps in order (after a look at t = 0 for the clip's size), so
    the frame generator runs forward; a request for an earlier frame starts it again."""

    def __init__(self, seg, detections, enc):
        from raypipe.engine.task import segment_frames

        self.start = lambda: segment_frames(seg, detections, enc)
        self.fps, self.last = float(enc.fps), seg.frames - 1
        self.frames, self.taken, self.frame = None, 0, None

    def __call__(self, t: float) -> np.ndarray:
        k = min(round(t * self.fps), self.last)
        if self.frames is None or k < self.taken - 1:
            self.frames, self.taken = self.start(), 0
        while self.taken <= k:
            self.frame = next(self.frames)
            self.taken += 1
        return self.frame


def _shown(seg) -> set[str]:
    """The sources a segment shows: its own, and the next one's under a transition. A pool
    task gets only their detections, the least the old design could have sent."""
    return {seg.shot.source, *([seg.transition.into.source] if seg.transition else [])}


def _pool_segment(seg, sent: dict, enc, smoothing: float, path: str) -> str:
    """In a pool worker: masks back from lists, the segment through MoviePy into its own file."""
    from moviepy import VideoClip

    from raypipe.detection.detections import Detections

    detections = Detections.pack({uri: _from_lists(found) for uri, found in sent.items()}, smoothing=smoothing)
    clip = VideoClip(frame_function=_FrameAt(seg, detections, enc), duration=clip_seconds(seg.frames, enc.fps))
    clip.write_videofile(path, fps=float(enc.fps), codec="libx264", preset=enc.preset,
                         ffmpeg_params=["-crf", str(enc.crf)], audio=False, logger=None)
    return path


def run_pool(cfg, run_dir: str) -> dict:
    import multiprocessing

    from moviepy import VideoFileClip, concatenate_videoclips
    from omegaconf import OmegaConf

    from raypipe.detection.detector import detect_all, expand
    from raypipe.plan.validate import prepare

    stages, t0 = {}, time.perf_counter()
    detector_cfg = OmegaConf.to_object(cfg.detector)
    worker_loads = multiprocessing.Value("i", 0)
    # Started first, as a program starts its pool: the workers load their detectors while
    # the driver plans and detects.
    with multiprocessing.Pool(os.cpu_count(), initializer=_load_detector,
                              initargs=(detector_cfg, tuple(cfg.job.prompts), worker_loads)) as pool:
        with timed(stages, "plan"):
            plan, output = prepare(cfg, run_dir)
        with timed(stages, "detect"):
            found, info = detect_all(detector_cfg, plan.sources, plan.prompts, plan.video_ranges())
            subjects = expand(found)  # the old driver held its detections as arrays
        with timed(stages, "segments"):
            tasks = [(seg, {uri: _as_lists(subjects[uri]) for uri in _shown(seg)}, plan.encode,
                      cfg.detector.track_smoothing, os.path.join(run_dir, f"segment{seg.index:05d}.mp4"))
                     for seg in plan.segments]
            paths = pool.starmap(_pool_segment, tasks, chunksize=1)
        clip_loads = info.clip_loads + worker_loads.value
    with timed(stages, "mux"):
        video = concatenate_videoclips([VideoFileClip(p, audio=False) for p in paths])
        video = video.with_duration(clip_seconds(plan.total_frames, plan.encode.fps))
        _write(video, _soundtrack(plan), plan.encode, output, run_dir)
    stages["total"] = round(time.perf_counter() - t0, 3)
    return {"frames": plan.total_frames, "clip_loads": clip_loads, "stages": stages, "output": output}


def _soundtrack(plan):
    """The muxer's mix in MoviePy: the soundtrack looped or trimmed to the video, with its
    volume and fades, ducked under `keep` clips, and each clip's own sound at its place."""
    from moviepy import AudioFileClip, CompositeAudioClip, afx

    audio, tracks = plan.audio, []
    if audio.path:
        music = AudioFileClip(audio.path)
        if music.duration < plan.duration:
            music = music.with_effects([afx.AudioLoop(duration=plan.duration)])
        else:
            music = music.subclipped(0, plan.duration)
        effects = [afx.MultiplyVolume(audio.volume)]
        effects += [afx.MultiplyVolume(audio.duck, start_time=c.at, end_time=c.at + c.seconds)
                    for c in audio.clips if c.keep]
        if audio.fade_in:
            effects.append(afx.AudioFadeIn(audio.fade_in))
        if audio.fade_out:
            effects.append(afx.AudioFadeOut(audio.fade_out))
        tracks.append(music.with_effects(effects))
    for c in audio.clips:
        sound = AudioFileClip(c.source).subclipped(c.source_start, c.source_start + c.seconds * c.speed)
        if c.speed != 1:
            sound = sound.with_speed_scaled(c.speed)
        tracks.append(sound.with_volume_scaled(c.volume).with_start(c.at))
    return CompositeAudioClip(tracks).with_duration(plan.duration) if tracks else None


def _write(video, audio, enc, output: str, tmp: str) -> None:
    """write_videofile with raypipe's encoder settings (libx264, preset, crf) and AAC sound."""
    if audio is not None:
        video = video.with_audio(audio)
    video.write_videofile(output, fps=float(enc.fps), codec="libx264", preset=enc.preset,
                          ffmpeg_params=["-crf", str(enc.crf)], audio_codec="aac", temp_audiofile_path=tmp,
                          logger=None)


# ---- moviepy: the timeline as an idiomatic MoviePy 2 program -------------------------------

# What each subject-aware look does in raypipe; MoviePy shows a static shot instead.
_LOOKS = {
    "reframe": "keeps the whole subject in frame, with a blurred fill",
    "focus": "blurs the background behind the subject's mask",
    "spotlight": "darkens all but the subject",
}
_TRANSITIONS = {"wipe": "a moving soft edge", "zoom_through": "flies into one subject and out of the next"}


def _picture(uri: str):
    """What an ImageClip shows: a file, or one of scikit-image's photographs as RGB."""
    if not uri.startswith("sample:"):
        return uri
    import skimage.data

    img = getattr(skimage.data, uri.split(":", 1)[1])()
    return np.dstack([img] * 3) if img.ndim == 2 else img[:, :, :3]


def _shot(shot, width: int, height: int, fps: float, not_expressed: list[str], index: int):
    """One shot as a clip of the output's size: a resize and a position, functions of t,
    for the camera; zooms go to the frame's centre, pans end there."""
    from moviepy import ImageClip, VideoFileClip

    from raypipe.frames.view import ease

    if shot.clip is None:
        clip = ImageClip(_picture(shot.source))
    else:
        clip = VideoFileClip(shot.source, audio=False).subclipped(shot.clip.start, shot.clip.end)
        if shot.clip.speed != 1:
            clip = clip.with_speed_scaled(shot.clip.speed)
    clip = clip.with_duration(shot.span_frames / fps)
    w, h = clip.size
    cover = max(width / w, height / h)
    p, seconds = shot.params, shot.span_frames / fps

    def progress(t: float) -> float:
        return t * fps / max(shot.span_frames - 1, 1)

    if shot.effect == "ken_burns":
        a, b = (1.0, p.zoom) if p.direction == "in" else (p.zoom, 1.0)
        return clip.resized(lambda t: cover * a * (b / a) ** ease(progress(t), p.easing)).with_position("center")
    if shot.effect == "punch_in":
        at = 0.4 * seconds if p.at is None else p.at
        return clip.resized(lambda t: cover * p.zoom ** ease((t - at) / p.length)).with_position("center")
    if shot.effect == "pan":
        scale = cover * p.zoom
        room_x, room_y = width - w * scale, height - h * scale  # <= 0: how far the picture can move
        start = "left" if p.start == "auto" else p.start  # raypipe's auto: the side away from the subject
        x0 = {"left": 0.0, "right": room_x}.get(start, room_x / 2)
        y0 = {"top": 0.0, "bottom": room_y}.get(start, room_y / 2)

        def position(t: float) -> tuple[float, float]:
            e = ease(progress(t), p.easing)
            return x0 + (room_x / 2 - x0) * e, y0 + (room_y / 2 - y0) * e

        return clip.resized(scale).with_position(position)
    if shot.effect in _LOOKS:
        not_expressed.append(f"segment {index}: {shot.effect} ({_LOOKS[shot.effect]}): a static shot instead")
    return clip.resized(cover).with_position("center")


def _caption(style, seg, width: int, height: int, fps: float):
    """A TextClip for the caption, over the segment's own frames, faded in and out."""
    from moviepy import TextClip, vfx
    from PIL import ImageColor

    from raypipe.frames.captions import resolve_font

    size = max(8, round(style.size * height))
    box = (*ImageColor.getrgb(style.box_color)[:3], round(255 * style.box_opacity)) if style.box else None
    text = TextClip(font=resolve_font(style.font), text=style.text, font_size=size, color=style.color,
                    stroke_color=style.outline_color, stroke_width=round(style.outline * size), bg_color=box,
                    text_align="center")
    m = round(style.margin * height)
    where = "bottom" if style.position == "auto" else style.position
    vertical, _, horizontal = where.partition("_")  # bottom, top_left, center...
    x = {"left": m, "right": width - text.w - m}.get(horizontal, (width - text.w) // 2)
    y = {"top": m, "bottom": height - text.h - m}.get(vertical, (height - text.h) // 2)
    effects = ([vfx.CrossFadeIn(style.fade_in)] if style.fade_in else []) + \
              ([vfx.CrossFadeOut(style.fade_out)] if style.fade_out else [])
    return (text.with_duration(seg.frames / fps).with_effects(effects)
            .with_start(seg.start / fps).with_position((x, y)))


def run_moviepy(cfg, run_dir: str) -> dict:
    from moviepy import CompositeVideoClip, vfx

    from raypipe.plan.timeline import plan as plan_job

    stages, t0 = {}, time.perf_counter()
    with timed(stages, "plan"):
        plan = plan_job(cfg.job, cfg.render)
    enc = plan.encode
    width, height, fps = enc.width, enc.height, float(enc.fps)
    not_expressed = ["framing (static, ken_burns, punch_in, pan): on the frame's centre, not on the subject"]
    with timed(stages, "compose"):
        shots = [_shot(seg.shot, width, height, fps, not_expressed, seg.index) for seg in plan.segments]
        starts = [seg.shot.span_start / fps for seg in plan.segments]
        for seg in plan.segments:
            tr, i = seg.transition, seg.index
            if tr is None:
                continue
            seconds = tr.frames / fps
            if tr.kind == "crossfade":
                shots[i + 1] = shots[i + 1].with_effects([vfx.CrossFadeIn(seconds)])
            elif tr.kind == "fade_black":  # out to black over the first half, in over the second
                half = seconds / 2
                shots[i] = shots[i].with_duration(shots[i].duration - half).with_effects([vfx.FadeOut(half)])
                shots[i + 1] = shots[i + 1].subclipped(half).with_effects([vfx.FadeIn(half)])
                starts[i + 1] += half
            else:
                not_expressed.append(f"segment {i} into {i + 1}: {tr.kind} ({_TRANSITIONS[tr.kind]}): a cut instead")
        captions = []
        for seg in plan.segments:
            style = cfg.job.segments[seg.index].caption
            if style is not None and str(style.text).strip():
                if style.position == "auto":
                    not_expressed.append(f"segment {seg.index}: caption position auto (clear of the subject): "
                                         "bottom instead")
                captions.append(_caption(style, seg, width, height, fps))
        video = CompositeVideoClip([s.with_start(t) for s, t in zip(shots, starts)] + captions,
                                   size=(width, height), bg_color=(0, 0, 0))
        video = video.with_duration(clip_seconds(plan.total_frames, enc.fps))
        audio = _soundtrack(plan)
    output = cfg.job.output or os.path.join(run_dir, f"{plan.name}.mp4")
    with timed(stages, "write"):
        _write(video, audio, enc, output, run_dir)
    stages["total"] = round(time.perf_counter() - t0, 3)
    return {"frames": plan.total_frames, "clip_loads": 0, "stages": stages, "not_expressed": not_expressed,
            "output": output}
