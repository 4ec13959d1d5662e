"""The service's state, as JSON files under serve.root, so that a restart loses nothing:

    renders/<id>.json         a render's record (what GET /v1/renders/{id} and the webhook carry)
    keys.json                 API keys: id, name, the key's SHA-256 (never the key), prefix
    idempotency/<hash>.json   an Idempotency-Key's body hash and the render it started
    jobs/<id>.pickle          a render's composed config while it has not ended: what a
                              restart submits again (its chunks already made come from the cache)

Every file is written whole to a temporary name and renamed over the old one: a reader sees
the old record or the new, never half of one. The standard library only: the service needs
no other server.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field

ENDED = ("succeeded", "failed", "cancelled")


def _write_json(path: str, value) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temp, "w") as f:
        json.dump(value, f, sort_keys=True)
    os.replace(temp, path)


def _read_json(path: str, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


@dataclass
class RenderRecord:
    """One render as the service keeps it. `public()` is the object clients see."""

    id: str
    key_id: str  # the API key that made it ("" without keys): another key's GET is a 404
    created_at: float
    status: str = "queued"
    progress: float = 0.0  # never goes back: the store keeps the highest seen
    frames_done: int = 0
    frames_total: int = 0
    frames_reused: int = 0  # of the frames done, those the chunk cache gave (a resumed render's)
    resumed: int = 0  # times a restart of the service took it up again
    rendering_since: float | None = None  # for the ETA: frames per second since rendering began
    stages: dict = field(default_factory=dict)  # status -> seconds spent in it
    status_since: float = 0.0
    error: str | None = None
    output: dict | None = None  # {uri, size, duration}
    metadata: dict = field(default_factory=dict)
    webhook_url: str | None = None
    updated_at: float = 0.0
    ended_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def eta_s(self) -> float | None:
        if self.ended:
            return 0.0
        if not self.rendering_since or not self.frames_done or not self.frames_total:
            return None
        rate = self.frames_done / max(1e-3, time.time() - self.rendering_since)
        return round((self.frames_total - self.frames_done) / rate, 1)

    def move(self, status: str, now: float) -> None:
        """Into `status`, the time spent in the one before counted as that stage's."""
        if status == self.status or self.ended:
            return
        self.stages[self.status] = round(self.stages.get(self.status, 0.0) + now - self.status_since, 3)
        self.status, self.status_since = status, now
        if status == "rendering" and self.rendering_since is None:
            self.rendering_since = now
        if self.ended:
            self.ended_at = now
            if status == "succeeded":
                self.progress = 1.0

    def requeue(self, now: float) -> None:
        """Queued again, by a restart that takes it up: the time the service was down is no
        stage's, and the ETA is measured afresh."""
        self.status, self.status_since, self.rendering_since = "queued", now, None
        self.resumed += 1

    def public(self) -> dict:
        return {"id": self.id, "status": self.status, "progress": round(self.progress, 4),
                "frames": {"done": self.frames_done, "total": self.frames_total, "reused": self.frames_reused},
                "eta_s": self.eta_s(), "resumed": self.resumed,
                "stages": dict(self.stages), "error": self.error, "output": self.output,
                "metadata": self.metadata, "webhook_url": self.webhook_url,
                "created_at": self.created_at, "updated_at": self.updated_at, "ended_at": self.ended_at}


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    digest: str  # SHA-256 of the whole key, hex
    created_at: float

    @property
    def prefix(self) -> str:
        """Where its renders' outputs go, under serve.root/outputs."""
        return f"key-{self.id}"


KEY_PREFIX = "rp"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Store:
    """The records of one service, safe from its threads (one lock: the files are small)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(os.path.expanduser(root))
        self._lock = threading.RLock()
        self._renders: dict[str, RenderRecord] = {}
        for name in sorted(os.listdir(self._dir("renders"))) if os.path.isdir(self._dir("renders")) else ():
            if name.endswith(".json"):
                record = RenderRecord(**_read_json(os.path.join(self._dir("renders"), name)))
                self._renders[record.id] = record

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    # --- renders --------------------------------------------------------------------------

    def add(self, record: RenderRecord) -> None:
        with self._lock:
            self._renders[record.id] = record
            self.save(record)

    def save(self, record: RenderRecord) -> None:
        with self._lock:
            record.updated_at = time.time()
            _write_json(os.path.join(self._dir("renders"), f"{record.id}.json"), asdict(record))

    def get(self, render_id: str, key_id: str | None = None) -> RenderRecord | None:
        """The record, or None where it is unknown or another key's (`key_id` None: any)."""
        record = self._renders.get(render_id)
        if record is None or (key_id is not None and record.key_id != key_id):
            return None
        return record

    def open_count(self, key_id: str) -> int:
        """The key's renders that have not ended (what serve.max_queued_per_key bounds)."""
        with self._lock:
            return sum(1 for r in self._renders.values() if r.key_id == key_id and not r.ended)

    def listing(self, key_id: str | None = None, status: str | None = None) -> list[RenderRecord]:
        """Newest first."""
        with self._lock:
            found = [r for r in self._renders.values()
                     if (key_id is None or r.key_id == key_id) and (status is None or r.status == status)]
        return sorted(found, key=lambda r: r.created_at, reverse=True)

    # --- the jobs of renders that have not ended ------------------------------------------------

    def keep_job(self, render_id: str, cfg) -> None:
        """The render's composed config, for a restart to submit again: pickled, as the service's
        own base config is, so that it comes back exactly (no composition, no resolvers run)."""
        path = os.path.join(self._dir("jobs"), f"{render_id}.pickle")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(temp, "wb") as f:
            pickle.dump(cfg, f)
        os.replace(temp, path)

    def job(self, render_id: str):
        """The kept config, or None where there is none or it cannot be read (written by
        another version of raypipe, say)."""
        try:
            with open(os.path.join(self._dir("jobs"), f"{render_id}.pickle"), "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception:  # any unpickling error: the render cannot be resumed
            return None

    def drop_job(self, render_id: str) -> None:
        try:
            os.remove(os.path.join(self._dir("jobs"), f"{render_id}.pickle"))
        except FileNotFoundError:
            pass

    # --- API keys ---------------------------------------------------------------------------

    def create_key(self, name: str) -> tuple[ApiKey, str]:
        """A new key and its secret, `rp_<id>_<secret>`: the caller shows it once; only its hash is kept."""
        key_id = secrets.token_hex(4)
        secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(24)}"
        key = ApiKey(key_id, name, digest(secret), time.time())
        with self._lock:
            keys = _read_json(self._dir("keys.json"), {})
            keys[key_id] = asdict(key)
            _write_json(self._dir("keys.json"), keys)
        return key, secret

    def key_of(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, compared in constant time; None for any other string."""
        parts = secret.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        found = _read_json(self._dir("keys.json"), {}).get(parts[1])
        if found is None or not hmac.compare_digest(found["digest"], digest(secret)):
            return None
        return ApiKey(**found)

    # --- idempotency --------------------------------------------------------------------------

    def claim(self, key_id: str, idempotency_key: str, body: bytes, render_id: str) -> tuple[str, bool]:
        """(the render this key names, whether the body is the one it was first sent with).
        A first use claims it for `render_id`; the caller holds `locked()` around claim and add."""
        name = hashlib.sha256(f"{key_id}\0{idempotency_key}".encode()).hexdigest()
        path = os.path.join(self._dir("idempotency"), f"{name}.json")
        body_hash = hashlib.sha256(body).hexdigest()
        found = _read_json(path)
        if found is None:
            _write_json(path, {"body": body_hash, "render": render_id})
            return render_id, True
        return found["render"], found["body"] == body_hash

    def locked(self):
        return self._lock
