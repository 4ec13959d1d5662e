"""Results that outlive a render, addressed by their content: each source's detection and
each chunk of frames. A re-render makes only what its inputs changed: an unchanged job
renders nothing (and starts no Ray), a render whose driver was killed resumes from the
chunks it had made, an edited segment re-renders its own frames only.

A key is a hash of everything that decides the result, code included. A source counts by its
bytes (a local file: the SHA-256 of its content) or, on an object store, by URI, size and
modification time (hashing would read every byte again). A chunk's key is its segment's,
taken relative to the segment's first frame (moving a segment along the timeline keeps its
chunks), and a chunk's file is named by its frame range inside the segment. A render reuses
the chunks of exactly its own tasks' ranges, so its video is bit-identical to a render that
made every chunk itself; on another cluster size, segments short enough to be one task
each still match.

Writes are complete files made visible at once (a rename, or an S3 PUT), so renders that
write one key side by side write the same bytes and a reader never sees half of one. An entry
that cannot be read is ignored and written again.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raypipe.detections import CompactSubject
from raypipe.storage import Storage, resolve, writer_gone, writer_of
from raypipe.timeline import Plan, SegmentPlan, ShotSpec

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).parent
# The code that decides a detection, and the code that decides a chunk's pixels and bits.
_DETECT_CODE = ("detector.py", "saliency.py", "clip.py", "faces.py", "detections.py", "media/images.py", "media/video.py",
                "media/hdr.py")
_RENDER_CODE = ("segment.py", "effects.py", "captions.py", "detections.py", "faces.py", "timeline.py", "media/images.py",
                "media/video.py", "media/hdr.py", "media/encode.py")
# Another render may be about to read an entry it has just looked up: eviction leaves entries
# used this recently alone, and temporary files of writers on other hosts this long.
GRACE_S = 600.0
STALE_TEMP_S = 86400.0


def default_root(cfg) -> str | None:
    """Where the cache lives, or None with render.cache=false."""
    if not cfg.render.cache:
        return None
    if cfg.cache.root:
        return cfg.cache.root
    if cfg.storage.root:  # every node of a cluster reaches it
        return cfg.storage.root.rstrip("/") + "/cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("RAYPIPE_CACHE_DIR") or os.path.join(base, "raypipe")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


@functools.lru_cache(maxsize=2)
def code_version(files: tuple[str, ...]) -> str:
    """The code itself (a renderer changed by an edit never reuses the old one's results) and
    the libraries under it."""
    h = hashlib.sha256()
    for name in files:
        h.update((_PACKAGE / name).read_bytes())
    for dist in ("av", "numpy", "opencv-python-headless", "opencv-python", "pillow", "torch", "open_clip_torch"):
        h.update(f"{dist}={_version(dist)};".encode())
    return h.hexdigest()[:16]


def _canon(v):
    """A JSON-able form of a plan's values that is equal exactly when they are."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return [type(v).__name__, {f.name: _canon(getattr(v, f.name)) for f in dataclasses.fields(v)}]
    if isinstance(v, np.ndarray):
        return ["ndarray", str(v.dtype), list(v.shape), hashlib.sha256(np.ascontiguousarray(v).data).hexdigest()]
    if isinstance(v, Fraction):
        return f"{v.numerator}/{v.denominator}"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return [_canon(x) for x in v]
    if isinstance(v, dict):
        return [[_canon(k), _canon(x)] for k, x in sorted(v.items(), key=lambda kv: repr(kv[0]))]
    if v is None or isinstance(v, (str, int, bool)):
        return v
    raise TypeError(f"cannot key a {type(v).__name__}")


def digest(*values) -> str:
    return hashlib.sha256(json.dumps(_canon(values), separators=(",", ":")).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def source_id(uri: str) -> str:
    """What a source is, independent of where a render reads it from."""
    if uri.startswith("sample:"):
        return f"{uri}@scikit-image-{_version('scikit-image')}"
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if fs.type_name == "local":
        return "sha256:" + _file_sha256(path, info.size, info.mtime_ns)
    return f"{uri}|{info.size}|{info.mtime_ns}"


def detection_keys(detector, kind: str, plan: Plan, ids: dict[str, str]) -> dict[str, str]:
    """Each source's detection key: the source, the detector that will run (`kind`: saliency
    when CLIP fell back) with every setting that changes its answer, and for a video the
    seconds and rate it is sampled at."""
    if kind == "clip":
        settings = (kind, detector.model, _file_or_name(detector.pretrained), _file_or_name(detector.model_config),
                    detector.image_size and list(detector.image_size), detector.method, float(detector.logit_scale),
                    detector.threshold, list(detector.background_prompts), list(plan.prompts))
    else:
        settings = (kind,)
    settings = (*settings, "faces" if detector.faces else "no faces")
    ranges = plan.video_ranges()
    version = code_version(_DETECT_CODE)
    return {uri: digest(version, ids[uri], settings,
                        (ranges[uri], float(detector.keyframe_rate)) if uri in ranges else None)
            for uri in plan.sources}


def _file_or_name(value: str | None) -> str | None:
    """A local file by its identity (a checkpoint is too big to hash on every render), else the name."""
    if value and os.path.isfile(value):
        st = os.stat(value)
        return f"{os.path.abspath(value)}|{st.st_size}|{st.st_mtime_ns}"
    return value


def segment_keys(plan: Plan, ids: dict[str, str], det_keys: dict[str, str], smoothing: float) -> dict[int, str]:
    """Each segment's chunk key: its shots (sources by content), effect, transition and caption
    relative to its first frame, its sources' detections, the encoder and the renderer."""
    version = code_version(_RENDER_CODE)

    def shot(s: ShotSpec, origin: int) -> ShotSpec:
        return dataclasses.replace(s, source=ids[s.source], span_start=s.span_start - origin)

    keys = {}
    for seg in plan.segments:
        tr = seg.transition
        moved = dataclasses.replace(
            seg, index=0, start=0, end=seg.frames, shot=shot(seg.shot, seg.start),
            transition=tr and dataclasses.replace(tr, start=tr.start - seg.start, into=shot(tr.into, seg.start)))
        sources = [seg.shot.source] + ([tr.into.source] if tr else [])
        keys[seg.index] = digest(version, moved, plan.encode, float(smoothing), [det_keys[s] for s in sources])
    return keys


# --- detections -------------------------------------------------------------------------

_DETECTION_SCHEMA = pa.schema([
    ("t", pa.float64()),  # source seconds of a video's keyframe; null for a still
    ("x0", pa.float64()), ("y0", pa.float64()), ("x1", pa.float64()), ("y1", pa.float64()),
    ("score", pa.float64()), ("method", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("mask_png", pa.binary()),
    ("faces", pa.list_(pa.float64())),  # each face's head box, 4 numbers apiece
])


@dataclass(frozen=True)
class Detection:
    value: CompactSubject | list  # a still's subject, or a video's [(seconds, subject), ...]
    detector: str
    fallback_reason: str | None


@dataclass(frozen=True)
class DetectionCache:
    """One Parquet table per source and detector setting: a row per keyframe."""

    root: str
    keys: dict  # source URI -> key

    def _name(self, uri: str) -> str:
        key = self.keys[uri]
        return f"detections/{key[:2]}/{key}.parquet"

    def get(self, uri: str) -> Detection | None:
        store, name = Storage(self.root), self._name(uri)
        try:
            table = pq.read_table(io.BytesIO(store.read_bytes(name)))
            if not table.schema.equals(_DETECTION_SCHEMA, check_metadata=False) or table.num_rows == 0:
                raise ValueError("unexpected schema")
            meta = json.loads(table.schema.metadata[b"raypipe"])
            rows = table.to_pylist()
        except FileNotFoundError:
            return None
        except Exception as e:  # a torn or foreign file: detect again and write it anew
            log.warning("ignoring unreadable detection cache entry %s: %s", store.uri(name), e)
            return None
        store.touch(name)
        subjects = [(r["t"], CompactSubject((r["x0"], r["y0"], r["x1"], r["y1"]), r["mask_png"], r["score"],
                                            r["method"], (r["width"], r["height"]),
                                            tuple(tuple(r["faces"][i:i + 4]) for i in range(0, len(r["faces"]), 4))))
                    for r in rows]
        value = subjects[0][1] if rows[0]["t"] is None else subjects
        return Detection(value, meta["detector"], meta["fallback_reason"])

    def put(self, uri: str, found: Detection) -> None:
        pairs = [(None, found.value)] if isinstance(found.value, CompactSubject) else found.value
        columns = {name: [] for name in _DETECTION_SCHEMA.names}
        for t, c in pairs:
            faces = [float(v) for face in c.faces for v in face]
            for name, v in zip(_DETECTION_SCHEMA.names, (t, *c.box, c.score, c.method, *c.size, c.mask_png, faces)):
                columns[name].append(v)
        meta = {"detector": found.detector, "fallback_reason": found.fallback_reason, "source": uri}
        table = pa.table(columns, schema=_DETECTION_SCHEMA.with_metadata({"raypipe": json.dumps(meta)}))
        buf = io.BytesIO()
        pq.write_table(table, buf)
        Storage(self.root).write_bytes(self._name(uri), buf.getvalue())


# --- chunks -----------------------------------------------------------------------------

_CHUNK_NAME = re.compile(r"(\d{7})-(\d{7})(\.\w+)")


class ChunkCache:
    def __init__(self, root: str, ext: str):
        self.store, self.ext = Storage(root), ext

    @staticmethod
    def _folder(key: str) -> str:
        return f"chunks/{key[:2]}/{key}"

    def name(self, key: str, seg: SegmentPlan, start: int, end: int) -> str:
        """A chunk of global frames [start, end), named by its range inside its segment."""
        return f"{self._folder(key)}/{start - seg.start:07d}-{end - seg.start:07d}{self.ext}"

    def ranges(self, key: str) -> dict[int, list[int]]:
        """The whole chunks cached for a segment key, whatever task ranges made them: first
        frame -> the ends of the chunks that start there (relative to the segment's start).
        One listing per segment; temporary files of unfinished writes do not match."""
        found: dict[int, list[int]] = {}
        for rel, _, _ in self.store.files(self._folder(key)):
            m = _CHUNK_NAME.fullmatch(rel.rsplit("/", 1)[-1])
            if m and m.group(3) == self.ext:
                found.setdefault(int(m.group(1)), []).append(int(m.group(2)))
        return found

    def use(self, name: str) -> None:
        """Marks a chunk as just used, for eviction by last use."""
        self.store.touch(name)


# --- both -------------------------------------------------------------------------------

def evict(root: str, max_bytes: int, keep: set[str]) -> dict:
    """Bounds the cache: removes the temporary files of writers that died (killed renders),
    then the least recently used entries until it holds at most `max_bytes`. Entries in
    `keep` (this render's) and entries used in the last GRACE_S seconds stay."""
    store, now = Storage(root), time.time()
    entries, swept = [], 0
    for rel, size, mtime in store.files():
        writer = writer_of(rel.rsplit("/", 1)[-1])
        if writer is not None:
            if writer_gone(*writer) or now - mtime > STALE_TEMP_S:
                store.delete(rel)
                swept += 1
            continue
        entries.append((mtime, rel, size))
    total, removed, freed = sum(e[2] for e in entries), 0, 0
    for mtime, rel, size in sorted(entries):
        if total <= max_bytes:
            break
        if rel in keep or now - mtime < GRACE_S:
            continue
        store.delete(rel)
        total, removed, freed = total - size, removed + 1, freed + size
    if (removed or swept) and "://" not in root:  # object stores have no folders to leave behind
        _remove_empty_folders(root)
    return {"bytes": total, "evicted_files": removed, "evicted_bytes": freed, "temp_files_swept": swept}


def _remove_empty_folders(root: str) -> None:
    for folder, subfolders, files in os.walk(root, topdown=False):
        if folder != root and not files:
            try:
                os.rmdir(folder)  # fails, harmlessly, if a render has just written into it
            except OSError:
                pass
