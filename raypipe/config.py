"""Hydra structured configs: the schema every job and override is checked against.

Keys and types are enforced by OmegaConf at composition time, so `render.fsp=24` fails
with the key's name before anything starts. Value checks that need more than a type
(positive durations, even sizes, known effects) live in `timeline.plan`.
"""
from __future__ import annotations

import contextvars
import difflib
import os
import re
import secrets
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from hydra.core.config_store import ConfigStore
from hydra.errors import MissingConfigException
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from raypipe.errors import ConfigError

ASSETS = Path(__file__).parent / "assets"

# Foreground prompts that name "the subject" of most photographs; jobs may replace them.
DEFAULT_PROMPTS = ["a person", "an animal", "a vehicle", "a plant", "food", "a building"]
# SCLIP's VOC background list: stuff classes that compete with the subject for each patch.
DEFAULT_BACKGROUND = [
    "sky", "wall", "tree", "wood", "grass", "road", "sea", "river", "mountain", "sands",
    "desk", "bed", "cloud", "lamp", "door", "window", "ceiling", "shelf", "curtain",
    "stair", "floor", "hill", "rail", "fence",
]


def param(default, help: str):
    """A dataclass field with one line of help, which `python -m raypipe effects` prints."""
    return field(default=default, metadata={"help": help})


@dataclass
class TransitionCfg:
    type: str = "cut"  # cut | crossfade | fade_black | wipe | zoom_through
    # Seconds it takes, out of this segment's tail.
    duration: float = 0.0
    # The transition's own parameters (Transitions, below; `python -m raypipe effects`).
    params: Dict[str, Any] = field(default_factory=dict)


class CaptionCfg:
    """A text layer bound to its segment (a layer's text keys, place and animation), kept
    clear of the subject by default."""

    # Every segment has the node, so `caption.text=...` adds one.
    text: str = param("", "the caption; empty: none")
    font: str = param("DejaVu Sans", "a font family that fontconfig knows, or a font file path")
    size: float = param(0.06, "text height, as a fraction of the frame's shorter side (its height in landscape)")
    color: str = param("white", "text colour: a name or #rrggbb, as Pillow reads them")
    outline: float = param(0.08, "stroke width, as a fraction of the text size; 0: none")
    outline_color: str = param("black", "stroke colour")
    box: bool = param(False, "a rounded box behind the text")
    box_color: str = param("black", "the box's colour")
    box_opacity: float = param(0.55, "the box's opacity, 0..1")
    align: str = param("center", "left, center or right, inside the text's block")
    width: Optional[float] = param(None, "a fraction of the frame's width that the text wraps inside (null: 0.86 "
                                         "less its outline); it narrows further to clear a face")
    position: str = param("auto", "auto: of bottom, top, the corners and center, one clear of the faces, shrinking "
                                  "and narrowing as needed, covering least of the subject; or one of the 9 anchors "
                                  "(top_left, top, top_right, left, center, right, bottom_left, bottom, bottom_right)")
    offset: List[float] = field(default_factory=lambda: [0.0, 0.0], metadata={
        "help": "[x, y] from the anchor, fractions of the frame: x to the right, y up"})
    margin: float = param(0.05, "distance from the frame's edge, as a fraction of the frame height")
    opacity: float = param(1.0, "0..1")
    fade_in: float = param(0.3, "seconds the caption takes to fade in (without `in`)")
    fade_out: float = param(0.3, "seconds it takes to fade out, ending with the segment (without `out`)")


@dataclass
class AnimationCfg:
    """How a layer comes in (`in`) or goes out (`out`)."""

    type: str = param("fade", "fade, slide_left, slide_right, slide_up, slide_down, zoom or wipe")
    duration: float = param(0.5, "seconds")


class LayerCfg:
    """An element drawn over the segments from `start` for `length` seconds."""

    type: str = param(MISSING, "text, image, box or video")
    # text
    text: str = param("", "text: the text; \\n breaks a line")
    font: str = param("DejaVu Sans", "text: a font family that fontconfig knows, or a font file path")
    size: float = param(0.06, "text: text height, as a fraction of the frame's shorter side (its height in landscape)")
    color: Optional[str] = param(None, "text and box: a name or #rrggbb (null: white text, a black box); a box also "
                                       "#rrggbbaa, gradient:A,B[,angle] (CSS's angle) or radial:A,B[,radius] (a "
                                       "fraction of its longer side; none: to its corners), A and B #rrggbb[aa]")
    outline: float = param(0.08, "text: stroke width, as a fraction of the text size; 0: none")
    outline_color: str = param("black", "text: stroke colour")
    box: bool = param(False, "text: a rounded box behind the text")
    box_color: str = param("black", "text: the box's colour")
    box_opacity: float = param(0.55, "text: the box's opacity, 0..1")
    align: str = param("center", "text: left, center or right, inside the text's block")
    # image and video
    source: Optional[str] = param(None, "image: a path, a URI or sample:NAME, its alpha kept; video: a clip's path "
                                        "or URI")
    mask: Optional[str] = param(None, "image: circle (a centred square, round) or rounded (corners of radius)")
    cut_from: float = param(0.0, "video: where it starts, in seconds of the clip")
    cut_to: Optional[float] = param(None, "video: where it ends, in seconds of the clip (null: the clip's end); "
                                          "frames after it hold its last")
    speed: float = param(1.0, "video: 2.0 plays it twice as fast")
    fit: Optional[str] = param(None, "video: inside width x height, contain (whole, the rest clear), cover (filled, "
                                     "cropped), stretch, or contain-blur (whole, over a blurred copy); null: contain")
    # shared
    width: Optional[float] = param(None, "a fraction of the frame's width: text wraps inside it (null: 0.9), an "
                                         "image fits inside it with height (null: 0.25), a box's and a video's "
                                         "(null: 1)")
    height: Optional[float] = param(None, "image, box and video: a fraction of the frame's height (null: 0.25 for "
                                          "an image, 0.12 for a box, 1 for a video)")
    radius: Optional[float] = param(None, "image (mask rounded) and box: corner radius, a fraction of the shorter "
                                          "side (null: 0.15 and 0)")
    # time
    start: float = param(0.0, "seconds into the video (or into segment N, with segment)")
    length: Optional[float] = param(None, "seconds on screen; null: to the end of the video (or of segment N)")
    segment: Optional[int] = param(None, "N: start and length count from segment N's start (-1: the last's)")
    # place
    position: str = param("center", "one of 9 anchors: top_left, top, top_right, left, center, right, bottom_left, "
                                    "bottom, bottom_right; or auto: of those clear of the faces, the one "
                                    "covering least of the subject")
    offset: List[float] = field(default_factory=lambda: [0.0, 0.0], metadata={
        "help": "[x, y] from the anchor, fractions of the frame: x to the right, y up"})
    margin: float = param(0.05, "distance from the frame's edges, as a fraction of the frame height")
    opacity: float = param(1.0, "0..1")
    avoid: Optional[str] = param(None, "subject: kept clear of the subject's box and every face, or the render "
                                       "fails naming the layer; null: drawn where it is put (a warning if it covers "
                                       "a face)")


# `in` is a Python keyword, which no class body can name: it is annotated here (and `out` after
# it, to be listed in that order), for a layer and for a caption, and the dataclass makes no
# __init__, __repr__ or __eq__ (the code it would write spells it). OmegaConf reads the fields
# as any others: a typo under them fails with its path.
LayerCfg.__annotations__.update({"in": "Optional[AnimationCfg]", "out": "Optional[AnimationCfg]"})
setattr(LayerCfg, "in", param(None, "how it comes in: {type, duration}; null: at once"))
LayerCfg.out = param(None, "how it goes out: {type, duration}; null: at once")
LayerCfg = dataclass(init=False, repr=False, eq=False)(LayerCfg)
CaptionCfg.__annotations__.update({"in": "Optional[AnimationCfg]", "out": "Optional[AnimationCfg]"})
setattr(CaptionCfg, "in", param(None, "how it comes in, as a layer's: {type, duration}; null: a fade of fade_in"))
CaptionCfg.out = param(None, "how it goes out, as a layer's: {type, duration}; null: a fade of fade_out")
CaptionCfg = dataclass(init=False, repr=False, eq=False)(CaptionCfg)


@dataclass
class SegmentCfg:
    # An image or a video file: a path, a URI, or sample:NAME; or a card: color:#RRGGBB,
    # gradient:#RRGGBB,#RRGGBB[,angle] or radial:#RRGGBB,#RRGGBB[,radius].
    source: str = MISSING
    # Seconds on screen; for a video, null plays its trimmed range once.
    duration: Optional[float] = None
    # How the shot frames the subject: static, ken_burns, punch_in, pan, reframe, focus, spotlight.
    effect: str = "static"
    # The effect's own parameters (Effects, below; `python -m raypipe effects`).
    params: Dict[str, Any] = field(default_factory=dict)
    # Transition from this segment into the next one; it occupies this segment's tail.
    transition: TransitionCfg = field(default_factory=TransitionCfg)
    # Text over the segment, kept clear of the subject; no text: none.
    # The class, which OmegaConf makes from its fields' defaults: it has no __init__ (see `in` above).
    caption: Optional[CaptionCfg] = CaptionCfg
    # Video sources only: where the range played starts, in seconds in the file.
    start: float = 0.0
    # Video sources only: where the range ends, in seconds in the file; null: the file's end.
    end: Optional[float] = None
    # Video sources only: 2.0 plays the range twice as fast.
    speed: float = 1.0
    # Video sources only: the clip's own sound: drop, mix (under the soundtrack) or keep
    # (the soundtrack ducks to job.audio.duck while it plays).
    audio: str = "drop"
    # Video sources only: the level of the clip's own sound.
    audio_volume: float = 1.0


@dataclass
class TrackCfg:
    """A sound placed on the video, mixed over the soundtrack where it plays."""

    # A path or URI of any file FFmpeg reads.
    path: str = MISSING
    # Where it starts, in seconds of the video.
    start: float = 0.0
    # Where the part played starts, in seconds of the file.
    cut_from: float = 0.0
    # Where it ends, in seconds of the file; null: the file's end, or the video's if that comes first.
    cut_to: Optional[float] = None
    # Its level, 1.0 as recorded.
    volume: float = 1.0
    # 2.0 plays it twice as fast, at the same pitch.
    speed: float = 1.0


@dataclass
class NormalizeCfg:
    # Evens out the loudness of the whole mix (FFmpeg's dynaudnorm, as Editly's audioNorm).
    enable: bool = False
    # Frames of 500 ms over which a frame's gain is smoothed: an odd number, 3 to 301.
    window: int = 5
    # The most a quiet part is raised, 1 to 100 times.
    max_gain: float = 30.0


@dataclass
class AudioCfg:
    # The soundtrack: a path or URI of any file FFmpeg reads, looped or trimmed to the video; null: none.
    path: Optional[str] = None
    # Its level, 1.0 as recorded.
    volume: float = 1.0
    # Seconds of fade from silence at the video's start.
    fade_in: float = 0.0
    fade_out: float = 0.0  # seconds of fade to silence at the video's end
    # The soundtrack's level while a segment with `audio: keep` plays.
    duck: float = 0.25
    # Sounds placed on the video (a voice-over, an effect), each over the soundtrack where it plays.
    tracks: List[TrackCfg] = field(default_factory=list)
    # Loudness normalisation of the mix (soundtrack, clips' sound and tracks together).
    normalize: NormalizeCfg = field(default_factory=NormalizeCfg)
    # The whole mix's level, set last (after normalize): 0.5 halves it.
    gain: float = 1.0


@dataclass
class JobCfg:
    # Names the run directory, the default output and the batch's root.
    name: str = "untitled"
    # The timeline, in order: a segment per photo or clip.
    segments: List[SegmentCfg] = field(default_factory=list)
    # Text, images and boxes over the segments, in order: the last on top.
    layers: List[LayerCfg] = field(default_factory=list)
    # The soundtrack under the whole video.
    audio: AudioCfg = field(default_factory=AudioCfg)
    # What the subject is, for CLIP; the default suits most photos.
    prompts: List[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    # Final video path or URI; null puts `<name>.mp4` in the run directory.
    output: Optional[str] = None


@dataclass
class VariantCfg:
    """One more shape of the same job, rendered in the same run."""

    name: str = MISSING  # in the output's name: trip-square.mp4
    width: int = MISSING  # the variant's width in pixels: a positive even number
    height: int = MISSING  # the variant's height in pixels: a positive even number
    # Its own layers instead of job.layers; null: the job's.
    layers: Optional[List[LayerCfg]] = None


@dataclass
class RenderCfg:
    # The video's width in pixels: a positive even number.
    width: int = 1280
    height: int = 720  # the video's height in pixels: a positive even number
    # An integer or a ratio such as 30000/1001.
    fps: str = "30"
    codec: str = "h264"  # h264 | h265 | vp9 | prores
    crf: int = 18  # quality for h264, h265 and vp9 (lower is better); prores ignores it
    # Speed against size: x264/x265 preset names; vp9 maps them to its cpu-used levels.
    preset: str = "veryfast"
    # Encoder threads per segment task; parallelism comes from running tasks side by side.
    encoder_threads: int = 1
    # A segment longer than this is rendered by several tasks over contiguous frame ranges;
    # null: enough tasks to keep every CPU of the cluster busy (see docs/design.md).
    max_frames_per_task: Optional[int] = None
    # Reuse detections and chunks that an earlier render already made (see cache.*).
    cache: bool = True
    # One video per variant ({name, width, height[, layers]}) instead of one at width x height,
    # the sources detected once for all of them.
    variants: List[VariantCfg] = field(default_factory=list)


@dataclass
class DetectorCfg:
    kind: str = "clip"  # clip | saliency
    # The open_clip architecture.
    model: str = "ViT-B-16"
    # An open_clip pretrained tag, or a checkpoint file: a path, or a URI on storage that every
    # node reaches (s3://...), which each node fetches once into its cache.
    pretrained: Optional[str] = "laion2b_s34b_b88k"
    # Optional open_clip model-config JSON for custom or fine-tuned architectures.
    model_config: Optional[str] = None
    # saliency: where the weights cannot be had, fall back, loudly (the log says DETECTOR FELL
    # BACK TO SALIENCY, report.json's detector_fallback says why); null: fail instead.
    fallback: Optional[str] = "saliency"
    # Input size (h, w) for dense localization; larger gives a finer patch grid.
    image_size: Optional[List[int]] = None
    method: str = "clearclip"  # clearclip | maskclip | sclip
    # How sharply a patch's scores are turned into foreground probabilities.
    logit_scale: float = 50.0
    # Foreground-probability threshold; null picks one per image with Otsu's method.
    threshold: Optional[float] = None
    # What competes with the subject for each patch (SCLIP's VOC background list).
    background_prompts: List[str] = field(default_factory=lambda: list(DEFAULT_BACKGROUND))
    # Video sources: frames per second sampled for detection (the keyframes).
    keyframe_rate: float = 2.0
    track_smoothing: float = 0.5  # seconds of Gaussian smoothing of the subject's path between keyframes
    # CLIP's threads on a CPU, and what a detector actor asks Ray for. One machine of many
    # cores renders a row faster than one thread detects it: raise it there.
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
    # CPUs an embedded Ray is given; null: every CPU of the machine.
    num_cpus: Optional[int] = None
    # Bytes of an embedded Ray's object store; null: Ray's default.
    object_store_memory: Optional[int] = None
    # CPUs each segment task asks Ray for.
    segment_cpus: float = 1.0
    # SPREAD puts segments on as many nodes as have room; DEFAULT packs them.
    segment_strategy: str = "SPREAD"
    # Show the Ray workers' own logs in the driver's output.
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
class EachCfg:
    # A segment per item of a row's list field (a list in JSONL or Parquet; in CSV a cell of
    # items separated by `|`), after the template's own segments and before `after`'s, effects cycling.
    list_field: Optional[str] = None
    # The effects those segments take in turn.
    effects: List[str] = field(default_factory=lambda: ["ken_burns", "punch_in"])
    # Seconds each of those segments stays.
    duration: float = 2.5
    # The transition between them; null: cuts.
    transition: Optional[str] = "crossfade"
    # Seconds each transition takes.
    transition_duration: float = 0.5
    # The first of these segments' caption (it may use ${row:NAME}); empty: none.
    caption: str = ""
    # Segments after the listed ones (an end card), which the last listed one goes into by its
    # transition; the template's job.segments stay before them (a title card).
    after: List[SegmentCfg] = field(default_factory=list)


@dataclass
class BatchCfg:
    # Many videos from one template: a row per video (CSV, JSONL or Parquet; a path or a URI).
    rows: Optional[str] = None
    # Each video's name from its row's fields ({id} and any scalar field), under `root`.
    output: str = "videos/{id}.mp4"
    # The batch's output root (a path or a URI). null: batch/<template's job.name> under the
    # working directory, the same for every run of the same command, so a rerun finds what is done.
    root: Optional[str] = None
    # Where a row's sources may be (path prefixes or URI prefixes). null: the rows file's folder.
    # sample: photographs and raypipe's own assets are always allowed.
    allowed_roots: Optional[List[str]] = None
    # Stop at the first failing row (the videos being muxed then are still published).
    fail_fast: bool = False
    # Videos whose tasks are in flight at once: memory stays flat whatever the batch's size.
    max_videos_in_flight: int = 4
    # On a cluster (ray.address), or with detector.num_gpus > 0: the detector's actors (one per
    # GPU to use; on CPUs, enough for detection to keep up with the renderers), each loading the model
    # once for the whole batch; the sources of each group of rows are dealt out among them.
    detector_actors: int = 1
    # A segment per item of a row's list (a listing's photos).
    each: EachCfg = field(default_factory=EachCfg)


@dataclass
class ServeCfg:
    # Where the service listens; beyond 127.0.0.1 (or ::1) it asks for API keys by default.
    host: str = "127.0.0.1"
    port: int = 8000  # the HTTP port of Ray Serve's proxy
    # The service's own folder: its renders' records, API keys (hashed), outputs and run files.
    root: str = "serve"
    # Every request but /healthz and /readyz needs `Authorization: Bearer KEY`; null: on
    # unless the service listens on loopback only.
    auth: Optional[bool] = None
    # Where a request's sources may be (path prefixes or URI prefixes, as batch.allowed_roots);
    # null: only sample: and raypipe's own assets.
    allowed_roots: Optional[List[str]] = None
    # Hosts that sources and webhooks may name although they are loopback, private or
    # link-local (an internal network; a test's receiver on 127.0.0.1).
    allowed_hosts: List[str] = field(default_factory=list)
    # The HMAC-SHA256 key of webhooks' X-Raypipe-Signature; null: $RAYPIPE_WEBHOOK_SECRET.
    webhook_secret: Optional[str] = None
    # Tries of a webhook's delivery, with backoff doubling from webhook_backoff_s between them.
    webhook_tries: int = 4
    webhook_backoff_s: float = 1.0  # seconds before a webhook's second try
    # Videos whose tasks are in flight at once; the others wait in the queue.
    max_in_flight: int = 2
    # The niceness of the renders, the detector and the engine's threads (0 to 19), above
    # that of the threads that answer requests (Ray starts its workers, Serve's replica and
    # proxy among them, at 15): a POST is answered at once while renders take every core.
    nice: int = 19
    # Limits on one request, each refused with a 4xx naming it.
    max_duration_s: float = 600.0  # seconds of video
    max_pixels: int = 3840 * 2160  # render.width x render.height
    max_fps: float = 60.0  # render.fps
    max_segments: int = 200  # job.segments, a template's rows' photos included
    max_body_bytes: int = 1 << 20  # bytes of a request's body
    max_queued_per_key: int = 20  # renders not yet ended, per API key


@dataclass
class Config:
    # The video: its timeline of photos and clips, its soundtrack, where it goes.
    job: JobCfg = field(default_factory=JobCfg)
    # The output's size, frame rate and encoder, and how the timeline is split into tasks.
    render: RenderCfg = field(default_factory=RenderCfg)
    # What finds each source's subject: CLIP (the default), or saliency without weights.
    detector: DetectorCfg = field(default_factory=DetectorCfg)
    # Where the tasks run: the driver's threads, an embedded Ray, or a cluster.
    ray: RayCfg = field(default_factory=RayCfg)
    # Where a run's files go: a folder, or storage every node of a cluster reaches.
    storage: StorageCfg = field(default_factory=StorageCfg)
    # The cache of detections and rendered chunks that re-renders reuse.
    cache: CacheCfg = field(default_factory=CacheCfg)
    # Many videos from one template, a row per video (python -m raypipe batch).
    batch: BatchCfg = field(default_factory=BatchCfg)
    # The render service (python -m raypipe serve): where it listens, keys, limits, webhooks.
    serve: ServeCfg = field(default_factory=ServeCfg)


_SCHEMAS = (TransitionCfg, CaptionCfg, AnimationCfg, LayerCfg, SegmentCfg, AudioCfg, JobCfg, VariantCfg, RenderCfg,
            DetectorCfg, RayCfg, StorageCfg, CacheCfg, EachCfg, BatchCfg, ServeCfg, Config)

# This process's render: part of its run directory's name, so that two renders started in
# the same second never share a directory, chunks or a default output.
RUN_ID = secrets.token_hex(3)


# The batch row whose config is being resolved: ${row:NAME} reads it (raypipe.batch sets it
# around each row's resolution; a context variable, so threads never see another's row).
CURRENT_ROW: contextvars.ContextVar = contextvars.ContextVar("raypipe_row")


def row_field(name: str, *default):
    """${row:NAME}, or ${row:NAME,DEFAULT}: DEFAULT where the row lacks the field or leaves it
    empty (an optional field: a CSV's empty cell, a JSONL row without the key)."""
    row = CURRENT_ROW.get(None)
    if row is None:
        raise ConfigError(f"${{row:{name}}} is only defined in a batch (python -m raypipe batch)")
    if len(default) > 1:  # OmegaConf split the default at its commas
        raise ConfigError(f"${{row:{name},...}}: a default with a comma is quoted: "
                          f'${{row:{name},"{", ".join(map(str, default))}"}}')
    return row.value(name, *default)


def cache_root(cfg) -> str | None:
    """Where the cache lives, or None with render.cache=false."""
    if not cfg.render.cache:
        return None
    if cfg.cache.root:
        return cfg.cache.root
    if cfg.storage.root:  # every node of a cluster reaches it
        return cfg.storage.root.rstrip("/") + "/cache"
    return str(local_cache())


def local_cache() -> Path:
    """This machine's raypipe cache: the default cache root, and where a node keeps the model
    weights it fetched from storage (in WEIGHTS, which eviction leaves alone: a model is no
    chunk to make again, and the least recently written file there)."""
    return Path(os.environ.get("RAYPIPE_CACHE_DIR") or user_cache("raypipe"))


WEIGHTS = "weights"


def user_cache(name: str) -> Path:
    """A folder of the user's cache directory (XDG's, else ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / name


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="raypipe_schema", node=Config)
    if not OmegaConf.has_resolver("asset"):
        # ${asset:NAME} is a file shipped with raypipe (the demo soundtrack).
        OmegaConf.register_new_resolver("asset", lambda name: str(ASSETS / name))
    if not OmegaConf.has_resolver("row"):
        # ${row:NAME} is a field of the batch row being rendered (raypipe.batch sets it);
        # ${row:NAME,DEFAULT} where it is missing or empty.
        OmegaConf.register_new_resolver("row", row_field)
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: RUN_ID)


def _schema(name: str):
    return next((t for t in _SCHEMAS if t.__name__ == name), None)


def did_you_mean(key: str, schema) -> str:
    """`; did you mean 'text'?` for a misspelt field of a schema dataclass, or nothing."""
    close = difflib.get_close_matches(key, [f.name for f in fields(schema)], n=1) if schema else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _node_type(hint):
    """The dataclass or list that a field holds, through Optional; None for anything else."""
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint if is_dataclass(hint) or typing.get_origin(hint) is list else None


def unknown_key(value, schema=None, where: str = "") -> str | None:
    """The first key of a config fragment that the schema lacks, or whose value it cannot take,
    as its full path and why (a did-you-mean for a misspelt key): OmegaConf names a key in a
    list's item from the item down (`caption.txt`, `opacity`)."""
    if schema is None:  # the whole config: Hydra's own sections are not ours to check
        value = {k: v for k, v in value.items() if k not in ("defaults", "hydra")}
        schema = Config
    if not isinstance(value, dict):
        return None
    hints = typing.get_type_hints(schema)
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in hints:
            return f"{path}: Key {key!r} not in {schema.__name__!r}{did_you_mean(str(key), schema)}"
        node = _node_type(hints[key])
        if node is not None and item is not None and not _interpolated(item) and \
                not isinstance(item, list if typing.get_origin(node) is list else dict):
            keys = "" if typing.get_origin(node) is list else f" of {{{', '.join(f.name for f in fields(node))}}}"
            return f"{path}: must be a {'list' if keys == '' else 'mapping'}{keys} (got {item!r})"
        if node is not None and typing.get_origin(node) is list:
            element = _node_type(typing.get_args(node)[0])
            if element is not None and isinstance(item, list):
                found = next((m for i, x in enumerate(item) if (m := unknown_key(x, element, f"{path}[{i}]"))), None)
                if found:
                    return found
            elif (refused := _refused(schema, key, hints[key], item, path)):
                return refused
        elif node is not None and (found := unknown_key(item, node, path)):
            return found
        elif node is None and (refused := _refused(schema, key, hints[key], item, path)):
            return refused
    return None


def _interpolated(value) -> bool:
    return isinstance(value, str) and "${" in value


def _fits(hint, value) -> bool:
    """Whether OmegaConf surely takes `value` for a field of type `hint` as it is (most do):
    the rest are tried on the schema itself, which says why it refuses one."""
    if value is None or _interpolated(value):
        return value is not None or type(None) in typing.get_args(hint) or hint is Any
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is list:
        return isinstance(value, list) and all(_fits(typing.get_args(hint)[0], v) for v in value)
    if typing.get_origin(hint) is dict:
        return isinstance(value, dict)
    accepted = {str: (str, int, float, bool), float: (int, float), int: (int,), bool: (bool,)}.get(hint)
    return hint is Any or (accepted is not None and isinstance(value, accepted)
                            and not (hint in (int, float) and isinstance(value, bool)))


def _refused(schema, key: str, hint, value, path: str) -> str | None:
    """`path: why` where the schema's field `key` (of type `hint`) refuses `value` (an item of a
    list named by its index), on one line; None where it takes it."""
    if _fits(hint, value):
        return None
    try:
        OmegaConf.merge(OmegaConf.structured(schema), {key: value})
    except OmegaConfBaseException as e:
        below = e.full_key[len(key):] if isinstance(e.full_key, str) and e.full_key.startswith(key) else ""
        return f"{path}{below}: {str(e).splitlines()[0]}"
    return None


def yaml_error_line(e: yaml.MarkedYAMLError) -> str:
    """`FILE:LINE:COLUMN: YAML syntax error: ...`, where the user needs to look first."""
    # A token the scanner could not finish (`duration 2`, no colon) starts at the context mark;
    # the problem mark is then where it gave up, often the next line.
    scanning = isinstance(e, yaml.scanner.ScannerError) and e.context_mark
    mark = e.context_mark if scanning else e.problem_mark or e.context_mark
    where = f"{mark.name}:{mark.line + 1}:{mark.column + 1}: " if mark else ""
    what = "; ".join(str(part) for part in (e.context, e.problem) if part)
    return f"{where}YAML syntax error: {what}"


def hydra_error_line(e: Exception) -> str:
    """Hydra's composition errors span many lines; the user needs the key or file and why."""
    if re.match(r"Could not override 'job'\. No match in the defaults list", str(e)):
        return "job: a job is added to the config: write +job=NAME (or +job=path/to/job.yaml)"
    if isinstance(e, MissingConfigException) and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")
        options = f" (available: {', '.join(sorted(e.options))})" if e.options else ""
        return f"{group or 'config'}: no config named {name!r}{options}"
    cause = e
    while cause is not None:  # the OmegaConf error that names the key, however deep Hydra wrapped it
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            message = str(cause).splitlines()[0]
            if isinstance(cause, MissingMandatoryValue):
                message = "is required: it has no default"
            # Raised by a resolver of ours (${row:NAME}), which says what is wrong itself.
            message = re.sub(r"^(ConfigError|JobError) raised while resolving interpolation: ", "", message)
            past_end = re.fullmatch(r"job\.segments\[(\d+)\]", cause.full_key)
            if past_end and "not a subclass of SegmentCfg" in message:  # Hydra tried to make it from nothing
                message = (f"the job has no segment {past_end.group(1)} (they count from 0); "
                           "add segments in the job file")
            if "is not in struct" in message:  # a new key in an open mapping (params): Hydra adds with +
                dotted = re.sub(r"\[(\d+)\]", r".\1", cause.full_key)
                message += f"; to add it: +{dotted}=VALUE"
            if (unknown := re.match(r"Key '([^']+)' not in '(\w+)'", message)):
                message += did_you_mean(unknown.group(1), _schema(unknown.group(2)))
            return f"{cause.full_key}: {message}"
        cause = cause.__cause__ or cause.__context__
    return str(e).strip().splitlines()[0]
