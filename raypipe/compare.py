"""`python -m raypipe bench compare +job=NAME [--runs N]`: one job four ways, side by side.

- raypipe: the CLI render on an embedded Ray (`python -m raypipe render`).
- sequential: the same renderer in one process without Ray: plan, detect, each segment in
  turn (its encoder on its own thread, as in a task), then the muxer.
- pool: the design raypipe replaced, rebuilt: a multiprocessing pool of one worker per CPU,
  each worker loading the detector itself while the driver detects too; masks reach the
  workers as Python lists; each worker renders its segment through MoviePy, and MoviePy
  joins the segments with the sound at the end.
- moviepy: the timeline as an idiomatic single-process MoviePy 2 program, for what MoviePy
  can express; what it cannot is listed and replaced by a static shot or a cut.

Each run is a fresh process, timed from its start to its exit, so no import or memory
carries over. Rounds run every variant once, in turn, after a warm-up round that is not
counted. Memory is that of every process of the run, from the kernel's own accounting.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

CONF_DIR = Path(__file__).resolve().parent / "conf"  # shipped inside the package
NAMES = ("raypipe", "sequential", "pool", "moviepy")
POLL_S = 0.1


def compose(overrides: list[str]):
    """The config `python -m raypipe render OVERRIDES` gets, composed as tests/conftest.py does."""
    from hydra import compose as hydra_compose, initialize_config_dir

    from raypipe.config import register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


@contextmanager
def _timed(stages: dict, name: str):
    t0 = time.perf_counter()
    yield
    stages[name] = round(time.perf_counter() - t0, 3)


def _clip_seconds(frames: int, fps) -> float:
    """A MoviePy duration that yields exactly `frames` frames: MoviePy writes
    int(duration * fps) frames, and frames / fps in floating point comes out one short
    (123 frames at 30 fps make 122.99999999999999)."""
    return (frames + 0.5) / float(fps)


# ---- sequential: raypipe's renderer in one process, no Ray ---------------------------------


def run_sequential(cfg, run_dir: str) -> dict:
    from omegaconf import OmegaConf

    from raypipe.detect import detect_all, expand
    from raypipe.detections import Detections
    from raypipe.mux import Muxer
    from raypipe.render import prepare
    from raypipe.segment import render_task
    from raypipe.storage import Storage
    from raypipe.timeline import split

    stages, t0 = {}, time.perf_counter()
    with _timed(stages, "plan"):
        plan, output = prepare(cfg, run_dir)
    with _timed(stages, "detect"):
        found, info = detect_all(OmegaConf.to_object(cfg.detector), plan.sources, plan.prompts, plan.video_ranges())
        detections = Detections.pack(expand(found), smoothing=cfg.detector.track_smoothing)
    store = Storage(run_dir)
    muxer = Muxer(store, plan.total_frames, plan.duration, plan.audio, output, plan.encode.codec)
    with _timed(stages, "segments"):
        for task in split(plan, None):  # one task per segment: nothing to share the work with
            muxer.add(render_task(task, detections, plan.encode, store))
    with _timed(stages, "mux"):
        muxer.finish()
    stages["total"] = round(time.perf_counter() - t0, 3)
    return {"frames": plan.total_frames, "clip_loads": info["clip_loads"], "stages": stages, "output": output}


# ---- pool: the multiprocessing + MoviePy design raypipe replaced ---------------------------

# Each pool worker's own detector, held for the worker's life as the old workers held
# theirs: this is where their memory and start-up went, though no worker detects.
_WORKER_DETECTOR = None


def _load_detector(detector_cfg, prompts: tuple[str, ...], loads) -> None:
    """Pool initializer: the worker loads the configured detector (importing torch and
    trying CLIP, falling back to saliency where the job allows) and counts CLIP loads."""
    global _WORKER_DETECTOR
    import cv2

    from raypipe.clip import ClipDetector, WeightsUnavailable
    from raypipe.detect import SaliencyDetector, clip_loads

    cv2.setNumThreads(1)  # one worker per CPU: parallelism comes from the workers
    if detector_cfg.kind == "clip":  # as the old workers did: import torch, try the weights, then fall back
        try:
            _WORKER_DETECTOR = ClipDetector(detector_cfg, prompts)
        except WeightsUnavailable:
            _WORKER_DETECTOR = SaliencyDetector()
    else:
        _WORKER_DETECTOR = SaliencyDetector()
    with loads.get_lock():
        loads.value += clip_loads()


def _as_lists(found):
    """A source's detections with every mask at the source's size as nested Python lists,
    as the old driver sent them."""
    import cv2

    if isinstance(found, list):  # a video's keyframes: [(seconds, subject), ...]
        return [(t, _as_lists(s)) for t, s in found]
    mask = cv2.resize(found.mask, found.source_size, interpolation=cv2.INTER_LINEAR)
    return found.box, mask.tolist(), found.score, found.method


def _from_lists(sent):
    from raypipe.detections import Subject

    if isinstance(sent, list):
        return [(t, _from_lists(s)) for t, s in sent]
    box, mask, score, method = sent
    return Subject(tuple(box), np.array(mask, np.uint8), score, method)


class _FrameAt:
    """One segment's frames from raypipe's renderer as a MoviePy frame function of t.
    MoviePy asks for t = k / fps in order (after a look at t = 0 for the clip's size), so
    the frame generator runs forward; a request for an earlier frame starts it again."""

    def __init__(self, seg, detections, enc):
        from raypipe.segment import segment_frames

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

    from raypipe.detections import Detections

    detections = Detections.pack({uri: _from_lists(found) for uri, found in sent.items()}, smoothing=smoothing)
    clip = VideoClip(frame_function=_FrameAt(seg, detections, enc), duration=_clip_seconds(seg.frames, enc.fps))
    clip.write_videofile(path, fps=float(enc.fps), codec="libx264", preset=enc.preset,
                         ffmpeg_params=["-crf", str(enc.crf)], audio=False, logger=None)
    return path


def run_pool(cfg, run_dir: str) -> dict:
    import multiprocessing

    from moviepy import VideoFileClip, concatenate_videoclips
    from omegaconf import OmegaConf

    from raypipe.detect import detect_all, expand
    from raypipe.render import prepare

    stages, t0 = {}, time.perf_counter()
    detector_cfg = OmegaConf.to_object(cfg.detector)
    worker_loads = multiprocessing.Value("i", 0)
    # Started first, as a program starts its pool: the workers load their detectors while
    # the driver plans and detects.
    with multiprocessing.Pool(os.cpu_count(), initializer=_load_detector,
                              initargs=(detector_cfg, tuple(cfg.job.prompts), worker_loads)) as pool:
        with _timed(stages, "plan"):
            plan, output = prepare(cfg, run_dir)
        with _timed(stages, "detect"):
            found, info = detect_all(detector_cfg, plan.sources, plan.prompts, plan.video_ranges())
            subjects = expand(found)  # the old driver held its detections as arrays
        with _timed(stages, "segments"):
            tasks = [(seg, {uri: _as_lists(subjects[uri]) for uri in _shown(seg)}, plan.encode,
                      cfg.detector.track_smoothing, os.path.join(run_dir, f"segment{seg.index:05d}.mp4"))
                     for seg in plan.segments]
            paths = pool.starmap(_pool_segment, tasks, chunksize=1)
        clip_loads = info["clip_loads"] + worker_loads.value
    with _timed(stages, "mux"):
        video = concatenate_videoclips([VideoFileClip(p, audio=False) for p in paths])
        video = video.with_duration(_clip_seconds(plan.total_frames, plan.encode.fps))
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

    from raypipe.effects import ease

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

    from raypipe.captions import resolve_font

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

    from raypipe.timeline import plan as plan_job

    stages, t0 = {}, time.perf_counter()
    with _timed(stages, "plan"):
        plan = plan_job(cfg.job, cfg.render)
    enc = plan.encode
    width, height, fps = enc.width, enc.height, float(enc.fps)
    not_expressed = ["framing (static, ken_burns, punch_in, pan): on the frame's centre, not on the subject"]
    with _timed(stages, "compose"):
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
            if style is not None:
                if style.position == "auto":
                    not_expressed.append(f"segment {seg.index}: caption position auto (clear of the subject): "
                                         "bottom instead")
                captions.append(_caption(style, seg, width, height, fps))
        video = CompositeVideoClip([s.with_start(t) for s, t in zip(shots, starts)] + captions,
                                   size=(width, height), bg_color=(0, 0, 0))
        video = video.with_duration(_clip_seconds(plan.total_frames, enc.fps))
        audio = _soundtrack(plan)
    output = cfg.job.output or os.path.join(run_dir, f"{plan.name}.mp4")
    with _timed(stages, "write"):
        _write(video, audio, enc, output, run_dir)
    stages["total"] = round(time.perf_counter() - t0, 3)
    return {"frames": plan.total_frames, "clip_loads": 0, "stages": stages, "not_expressed": not_expressed,
            "output": output}


VARIANTS = {"sequential": run_sequential, "pool": run_pool, "moviepy": run_moviepy}


# ---- measuring a run: wall time and the memory of its whole process tree -------------------


def _become_subreaper() -> None:
    """Make this process inherit the orphans of its descendants (a Ray worker whose raylet
    exited, a daemonized helper), so that they stay in the measured tree, not under init."""
    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # it exited meanwhile
        pass
    return None


def _reap() -> None:
    with suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


class ProcessTree:
    """Peak RSS of every process below this one: the kernel's own high-water mark (VmHWM),
    polled from /proc every POLL_S seconds. A process that lives less than that is missed."""

    def __init__(self):
        self.peaks: dict[tuple[int, bytes], int] = {}  # (pid, start time) -> kB

    def sample(self) -> list[int]:
        """Updates the peaks; returns the live descendants."""
        children: dict[int, list[int]] = {}
        state: dict[int, tuple[bytes, bytes]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2:].split()  # from field 3 on: state, ppid, ...
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            state[pid] = (fields[0], fields[19])  # state, start time (fields 3 and 22)
        live, todo = [], list(children.get(os.getpid(), ()))
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, ()))
            status, started = state[pid]
            hwm = None if status == b"Z" else _vm_hwm_kb(pid)
            if hwm is not None:
                live.append(pid)
                self.peaks[pid, started] = max(self.peaks.get((pid, started), 0), hwm)
        return live

    def run(self, cmd: list[str], **popen) -> tuple[float, float, int]:
        """Runs cmd; returns the seconds to its last line on stdout (its result: the video's
        path, printed once the video is published) and to its exit, and its exit code.
        Processes that outlive it (Ray's workers exit after their raylet) are measured until
        they exit."""
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, **popen)
        printed = [None]

        def watch() -> None:
            for _ in proc.stdout:
                printed[0] = time.perf_counter() - t0

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        while True:
            self.sample()
            try:
                code = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
        wall = time.perf_counter() - t0
        watcher.join()
        deadline = time.monotonic() + 30
        while live := self.sample():
            if time.monotonic() > deadline:  # a straggler must not spill into the next run
                for pid in live:
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            _reap()
            time.sleep(POLL_S)
        _reap()
        return printed[0] or wall, wall, code


# ---- the benchmark ------------------------------------------------------------------------


def _run(variant: str, run_dir: str, overrides: list[str]) -> dict:
    os.makedirs(run_dir)
    if variant == "raypipe":
        cmd = [sys.executable, "-m", "raypipe", "render", *overrides, f"hydra.run.dir={run_dir}"]
    else:
        cmd = [sys.executable, "-m", "raypipe.compare", variant, run_dir, *overrides]
    tree = ProcessTree()
    err_path = os.path.join(run_dir, "stderr.txt")
    with open(err_path, "w") as err:
        to_result, wall, code = tree.run(cmd, stderr=err)
    if code != 0:
        tail = "\n".join(Path(err_path).read_text().strip().splitlines()[-15:])
        sys.exit(f"error: {variant} failed (exit {code}); the end of its stderr:\n{tail}")
    result = json.loads(Path(run_dir, "report.json" if variant == "raypipe" else "result.json").read_text())
    peaks = tree.peaks.values()
    return {"result_s": to_result, "exit_s": wall, "frames": result["frames"], "clip_loads": result["clip_loads"], "stages": result["stages"],
            "peak_rss_mb": max(peaks) / 1024, "sum_rss_mb": sum(peaks) / 1024,
            "not_expressed": result.get("not_expressed", [])}


def _summary(runs: list[dict], frames: int) -> dict:
    walls = [r["result_s"] for r in runs]
    median = statistics.median(walls)
    return {
        "median_s": round(median, 2), "min_s": round(min(walls), 2), "max_s": round(max(walls), 2),
        "exit_median_s": round(statistics.median(r["exit_s"] for r in runs), 2),
        "fps": round(frames / median, 1),
        "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs)),
        "sum_rss_mb": round(statistics.median(r["sum_rss_mb"] for r in runs)),
        "clip_loads": max(r["clip_loads"] for r in runs),  # the most any run loaded
        "stages": {k: round(statistics.median(r["stages"][k] for r in runs), 2) for k in runs[0]["stages"]},
    }


def compare(args) -> dict:
    cfg = compose(args.overrides)  # a bad override fails here, before any run
    if not cfg.job.segments:
        sys.exit("error: no job selected: pass +job=NAME")
    if cfg.render.codec != "h264":
        sys.exit(f"error: bench compare measures h264 renders, as MoviePy writes them (got {cfg.render.codec})")
    _become_subreaper()
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory(prefix="raypipe-compare-") as tmp:
        for r in range(args.runs + 1):
            for variant in args.variants:
                run_dir = os.path.join(tmp, f"{variant}-{r}")
                run = _run(variant, run_dir, args.overrides)
                shutil.rmtree(run_dir)
                print(f"{f'round {r}/{args.runs}' if r else 'warm-up'}: {variant} {run['result_s']:.2f} s to the "
                      f"result, {run['exit_s']:.2f} s to exit", file=sys.stderr)
                if r:
                    runs[variant].append(run)
    frames = next(iter(runs.values()))[0]["frames"]
    variants = {v: _summary(rs, frames) for v, rs in runs.items()}
    base = variants.get("raypipe")
    result = {
        "job": cfg.job.name, "frames": frames, "cpus": os.cpu_count(), "variants": variants,
        "ratios": {v: round(variants[v]["median_s"] / base["median_s"], 2) if base and v in variants else None
                   for v in NAMES[1:]},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    not_expressed = runs["moviepy"][0]["not_expressed"] if "moviepy" in runs else []
    print(table(result, args.runs, not_expressed), file=sys.stderr)
    return result


def table(result: dict, runs: int, not_expressed: list[str]) -> str:
    lines = [f"{result['job']}: {result['frames']} frames, {result['cpus']} CPUs, medians of {runs} run(s) "
             "after a warm-up; seconds from start-up to the printed result (exit: to the process's exit)",
             f"{'variant':<11} {'median s':>8} {'min s':>7} {'max s':>7} {'exit s':>7} {'fps':>6} {'/raypipe':>8} "
             f"{'peak RSS MB':>11} {'sum RSS MB':>10} {'CLIP loads':>10}"]
    for name, v in result["variants"].items():
        ratio = result["ratios"].get(name) if name != "raypipe" else 1.0
        lines.append(f"{name:<11} {v['median_s']:>8.2f} {v['min_s']:>7.2f} {v['max_s']:>7.2f} "
                     f"{v['exit_median_s']:>7.2f} {v['fps']:>6.1f} "
                     f"{'-' if ratio is None else f'{ratio:.2f}x':>8} {v['peak_rss_mb']:>11} {v['sum_rss_mb']:>10} "
                     f"{v['clip_loads']:>10}")
    lines.append("stages (medians, s):")
    for name, v in result["variants"].items():
        lines.append(f"  {name:<11} " + "  ".join(f"{k} {s:.2f}" for k, s in v["stages"].items()))
    if not_expressed:
        lines.append("moviepy: what MoviePy cannot express, and what it shows instead:")
        lines += [f"  - {item}" for item in not_expressed]
    return "\n".join(lines)


def add_parser(sub) -> None:
    """The `compare` command of `python -m raypipe bench`."""
    p = sub.add_parser("compare", help="one job through raypipe, one process, a multiprocessing pool and MoviePy")
    p.add_argument("--runs", type=_positive, default=3, help="counted rounds, after one warm-up round (default: 3)")
    p.add_argument("--out", default="bench.json", help="where the results go (default: ./bench.json)")
    p.add_argument("--variants", type=_variant_list, default=list(NAMES),
                   help=f"comma-separated, of {','.join(NAMES)} (default: all)")
    p.add_argument("overrides", nargs="*", default=[], help="Hydra overrides (default: +job=demo)")
    p.set_defaults(fn=compare)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {value})")
    return int(value)


def _variant_list(value: str) -> list[str]:
    names = value.split(",")
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(NAMES)})")
    return names


if __name__ == "__main__":  # one run of a variant, in its own process: VARIANT RUN_DIR OVERRIDES...
    variant, run_dir, *overrides = sys.argv[1:]
    result = VARIANTS[variant](compose(overrides), run_dir)
    Path(run_dir, "result.json").write_text(json.dumps(result))
    print(result["output"], flush=True)  # as the CLI does: the moment the result is there
