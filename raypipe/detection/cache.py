"""Results that outlive a render, addressed by their content: here each source's detection
and the keys' machinery; the chunks of frames are in raypipe.engine.cache. A re-render makes
only what its inputs changed: an unchanged job renders nothing (and starts no Ray), a render
whose driver was killed resumes from the chunks it had made, an edited segment re-renders
its own frames only.

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
from dataclasses import dataclass
from fractions import Fraction
from importlib import metadata

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raypipe import code
from raypipe.detection.detections import CompactSubject
from raypipe.detection.settings import file_identity
from raypipe.errors import JobError, MediaError, first_line
from raypipe.media.cards import is_card
from raypipe.storage import Storage, resolve

log = logging.getLogger(__name__)

# The code that decides a detection: the detectors and every module they import (found by
# raypipe.code, so a module added, moved or edited changes the keys of what it decides).
DETECT_CODE = ("raypipe.detection.detector", "raypipe.detection.clip")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


@functools.lru_cache(maxsize=4)
def code_version(roots: tuple[str, ...]) -> str:
    """The code itself: these modules and all they import, each by its place in the package
    and its bytes (a renderer changed by an edit or a move never reuses the old one's
    results), and the libraries under it."""
    h = hashlib.sha256()
    for rel, path in code.files(roots):
        h.update(f"{rel}\0".encode())
        h.update(path.read_bytes())
    for dist in ("av", "numpy", "opencv-python-headless", "opencv-python", "pillow", "torch", "open_clip_torch"):
        h.update(f"{dist}={_version(dist)};".encode())
    return h.hexdigest()[:16]


def _canon(v):
    """A JSON-able form of a plan's values that is equal exactly when they are."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        # A field left out of equality (a memo) is not part of what the value is.
        return [type(v).__name__, {f.name: _canon(getattr(v, f.name)) for f in dataclasses.fields(v) if f.compare}]
    if isinstance(v, np.ndarray):
        return ["ndarray", str(v.dtype), list(v.shape), hashlib.sha256(np.ascontiguousarray(v).data).hexdigest()]
    if isinstance(v, bytes):  # a drawn bitmap (a text layer's PNG)
        return ["bytes", hashlib.sha256(v).hexdigest()]
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
    if is_card(uri):  # its name is all it is
        return uri
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:  # gone since the checks (a batch's later rows)
        raise MediaError(f"no such file: {uri}")
    if fs.type_name == "local":
        try:
            return "sha256:" + _file_sha256(path, info.size, info.mtime_ns)
        except OSError as e:
            raise MediaError(f"cannot read {uri}: {e.strerror or e}") from None
    return f"{uri}|{info.size}|{info.mtime_ns}"


def detection_keys(detector, kind: str, sources: tuple[str, ...], prompts: tuple[str, ...],
                   ranges: dict[str, tuple[float, float]], ids: dict[str, str]) -> dict[str, str]:
    """Each source's detection key: the source, the detector that will run (`kind`: saliency
    when CLIP fell back) with every setting that changes its answer, and for a video the
    seconds and rate it is sampled at."""
    if kind == "clip":
        settings = (kind, detector.model, _file_or_name(detector.pretrained, "detector.pretrained"),
                    _file_or_name(detector.model_config, "detector.model_config"),
                    detector.image_size and list(detector.image_size), detector.method, float(detector.logit_scale),
                    detector.threshold, list(detector.background_prompts), list(prompts))
    else:
        settings = (kind,)
    settings = (*settings, "faces" if detector.faces else "no faces")
    version = code_version(DETECT_CODE)
    return {uri: digest(version, ids[uri], settings,
                        (ranges[uri], float(detector.keyframe_rate)) if uri in ranges else None)
            for uri in sources}


def _file_or_name(value: str | None, field: str) -> str | None:
    """A file by its identity (a checkpoint is too big to hash on every render), else the name."""
    if not value:
        return value
    try:
        found = file_identity(value)
    except (OSError, ValueError) as e:
        raise JobError(field, f"cannot reach {value} ({first_line(e)})") from None
    if found is None:
        return value
    return f"{value if '://' in value else os.path.abspath(value)}|{found[0]}|{found[1]}"


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
