"""Hydra structured configs: the schema every job and override is checked against.

Keys and types are enforced by OmegaConf at composition time, so `render.fsp=24` fails
with the key's name before anything starts. Value checks that need more than a type
(positive durations, even sizes, known effects) live in `timeline.plan`.
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.errors import MissingConfigException
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

ASSETS = Path(__file__).parent / "assets"

# Foreground prompts that name "the subject" of most photographs; jobs may replace them.
DEFAULT_PROMPTS = ["a person", "an animal", "a vehicle", "a plant", "food", "a building"]
# SCLIP's VOC background list: stuff classes that compete with the subject for each patch.
DEFAULT_BACKGROUND = [
    "sky", "wall", "tree", "wood", "grass", "road", "sea", "river", "mountain", "sands",
    "desk", "bed", "cloud", "lamp", "door", "window", "ceiling", "shelf", "curtain",
    "stair", "floor", "hill", "rail", "fence",
]


@dataclass
class TransitionCfg:
    type: str = "cut"  # cut | crossfade | fade_black | wipe | zoom_through
    duration: float = 0.0
    params: Dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptionCfg:
    text: str = ""  # empty: no caption (every segment has the node, so `caption.text=...` adds one)
    # A font family that fontconfig knows, or a font file path.
    font: str = "DejaVu Sans"
    size: float = 0.06  # text height, as a fraction of the frame height
    color: str = "white"
    outline: float = 0.08  # stroke width, as a fraction of the text size; 0: none
    outline_color: str = "black"
    box: bool = False  # a rounded box behind the text
    box_color: str = "black"
    box_opacity: float = 0.55
    # auto keeps clear of the subject; or bottom, top, center, bottom_left, ..., top_right.
    position: str = "auto"
    margin: float = 0.05  # from the frame's edge, as a fraction of the frame height
    fade_in: float = 0.3
    fade_out: float = 0.3


@dataclass
class SegmentCfg:
    # An image or a video file: a path, a URI, or sample:NAME.
    source: str = MISSING
    # Seconds on screen; for a video, null plays its trimmed range once.
    duration: Optional[float] = None
    effect: str = "static"
    params: Dict[str, Any] = field(default_factory=dict)
    # Transition from this segment into the next one; it occupies this segment's tail.
    transition: TransitionCfg = field(default_factory=TransitionCfg)
    caption: Optional[CaptionCfg] = field(default_factory=CaptionCfg)
    # Video sources only: the range played (seconds in the file) and its speed.
    start: float = 0.0
    end: Optional[float] = None
    speed: float = 1.0
    # Video sources only: the clip's own sound: drop, mix (under the soundtrack) or keep
    # (the soundtrack ducks to job.audio.duck while it plays).
    audio: str = "drop"
    audio_volume: float = 1.0


@dataclass
class AudioCfg:
    path: Optional[str] = None
    volume: float = 1.0
    fade_in: float = 0.0
    fade_out: float = 0.0
    # The soundtrack's level while a segment with `audio: keep` plays.
    duck: float = 0.25


@dataclass
class JobCfg:
    name: str = "untitled"
    segments: List[SegmentCfg] = field(default_factory=list)
    audio: AudioCfg = field(default_factory=AudioCfg)
    prompts: List[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    # Final video path or URI; null puts `<name>.mp4` in the run directory.
    output: Optional[str] = None


@dataclass
class RenderCfg:
    width: int = 1280
    height: int = 720
    # An integer or a ratio such as 30000/1001.
    fps: str = "30"
    codec: str = "h264"  # h264 | h265 | vp9 | prores
    crf: int = 18  # quality for h264, h265 and vp9 (lower is better); prores ignores it
    # Speed against size: x264/x265 preset names; vp9 maps them to its cpu-used levels.
    preset: str = "veryfast"
    # Encoder threads per segment task; parallelism comes from running tasks side by side.
    encoder_threads: int = 1
    # A segment longer than this is rendered by several tasks over contiguous frame ranges;
    # null: enough tasks to keep every CPU of the cluster busy (see README, Performance).
    max_frames_per_task: Optional[int] = None
    # Reuse detections and chunks that an earlier render already made (see cache.*).
    cache: bool = True


@dataclass
class DetectorCfg:
    kind: str = "clip"  # clip | saliency
    model: str = "ViT-B-16"
    # An open_clip pretrained tag, or a path to a local checkpoint file.
    pretrained: Optional[str] = "laion2b_s34b_b88k"
    # Optional open_clip model-config JSON for custom or fine-tuned architectures.
    model_config: Optional[str] = None
    # null: fail when the weights are unavailable; saliency: fall back, loudly.
    fallback: Optional[str] = None
    # Input size (h, w) for dense localization; larger gives a finer patch grid.
    image_size: Optional[List[int]] = None
    method: str = "clearclip"  # clearclip | maskclip | sclip
    logit_scale: float = 50.0
    # Foreground-probability threshold; null picks one per image with Otsu's method.
    threshold: Optional[float] = None
    background_prompts: List[str] = field(default_factory=lambda: list(DEFAULT_BACKGROUND))
    # Video sources: frames per second sampled for detection, and the smoothing (seconds)
    # of the subject's path between them.
    keyframe_rate: float = 2.0
    track_smoothing: float = 0.5
    num_cpus: float = 1.0
    # Ask for a GPU on clusters that have one: the model and its inputs then live on it (one
    # actor on a GPU node; report.json's detector_device says where it ran). Segment tasks
    # only ever ask for CPUs.
    num_gpus: float = 0.0
    # Images per CLIP forward pass.
    batch_size: int = 16
    # Faces (OpenCV's Haar cascades) beside the subject's mask: every shot keeps them whole,
    # and zooms aim at them.
    faces: bool = True


@dataclass
class RayCfg:
    # null starts an embedded local Ray; "auto" joins the running cluster; or host:port.
    address: Optional[str] = None
    num_cpus: Optional[int] = None
    object_store_memory: Optional[int] = None
    segment_cpus: float = 1.0
    # SPREAD puts segments on as many nodes as have room; DEFAULT packs them.
    segment_strategy: str = "SPREAD"
    log_to_driver: bool = False
    # An embedded Ray starts only when rendering on its workers would save more than this
    # over the driver alone (in the task estimates' unit, seconds of one core, which run about
    # twice the real time here): about what Ray's start costs, so that a job or an edit that
    # one process renders as soon renders in the driver. 0: start it whenever there is a frame.
    min_saving_s: float = 8.0


@dataclass
class StorageCfg:
    # Where run files go (segment chunks, report, video): null means the Hydra run
    # directory; a URI such as s3://bucket/prefix puts <job>/<time>/ there, readable by
    # every node. S3 endpoint and credentials come from the usual AWS_* variables.
    root: Optional[str] = None


@dataclass
class CacheCfg:
    # Content-addressed detections and chunks. null: under storage.root when it is set (every
    # node reaches it), else $RAYPIPE_CACHE_DIR, else the user's cache directory.
    root: Optional[str] = None
    # Size bound; beyond it, the least recently used entries go first.
    max_gb: float = 20.0


@dataclass
class Config:
    job: JobCfg = field(default_factory=JobCfg)
    render: RenderCfg = field(default_factory=RenderCfg)
    detector: DetectorCfg = field(default_factory=DetectorCfg)
    ray: RayCfg = field(default_factory=RayCfg)
    storage: StorageCfg = field(default_factory=StorageCfg)
    cache: CacheCfg = field(default_factory=CacheCfg)


# This process's render: part of its run directory's name, so that two renders started in
# the same second never share a directory, chunks or a default output.
RUN_ID = secrets.token_hex(3)


def cache_root(cfg) -> str | None:
    """Where the cache lives, or None with render.cache=false."""
    if not cfg.render.cache:
        return None
    if cfg.cache.root:
        return cfg.cache.root
    if cfg.storage.root:  # every node of a cluster reaches it
        return cfg.storage.root.rstrip("/") + "/cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("RAYPIPE_CACHE_DIR") or os.path.join(base, "raypipe")


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="raypipe_schema", node=Config)
    if not OmegaConf.has_resolver("asset"):
        # ${asset:NAME} is a file shipped with raypipe (the demo soundtrack).
        OmegaConf.register_new_resolver("asset", lambda name: str(ASSETS / name))
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: RUN_ID)


def hydra_error_line(e: Exception) -> str:
    """Hydra's composition errors span many lines; the user needs the key or file and why."""
    if isinstance(e, MissingConfigException) and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")
        options = f" (available: {', '.join(sorted(e.options))})" if e.options else ""
        return f"{group or 'config'}: no config named {name!r}{options}"
    cause = e
    while cause is not None:  # the OmegaConf error that names the key, however deep Hydra wrapped it
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            message = str(cause).splitlines()[0]
            past_end = re.fullmatch(r"job\.segments\[(\d+)\]", cause.full_key)
            if past_end and "not a subclass of SegmentCfg" in message:  # Hydra tried to make it from nothing
                message = (f"the job has no segment {past_end.group(1)} (they count from 0); "
                           "add segments in the job file")
            if "is not in struct" in message:  # a new key in an open mapping (params): Hydra adds with +
                dotted = re.sub(r"\[(\d+)\]", r".\1", cause.full_key)
                message += f"; to add it: +{dotted}=VALUE"
            return f"{cause.full_key}: {message}"
        cause = cause.__cause__ or cause.__context__
    return str(e).strip().splitlines()[0]
