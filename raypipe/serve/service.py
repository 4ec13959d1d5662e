"""RenderService: one engine for the service's life (the detector loads once), fed by requests.

A request is checked (body, fields, limits, sources, webhook URL), composed as the CLI composes
a job with the service's own overrides first, recorded, then submitted to the engine as a
video; its handle's changes update the record (progress never goes back), and its end is the
record's end, published to the webhook. Nothing is written for a request that is refused.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import pickle
import re
import secrets
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from raypipe.api import CONF, compose, config
from raypipe.batch.rows import Row
from raypipe.batch.videos import row_config
from raypipe.config import hydra_error_line, unknown_key
from raypipe.engine.driver import JobVideo
from raypipe.engine.engine import Engine, EngineOptions
from raypipe.engine.video import VideoEnd, VideoHandle, VideoStatus
from raypipe.errors import ConfigError, RaypipeError, first_line
from raypipe.plan.timeline import Plan
from raypipe.serve.guard import (
    Refused,
    check_duration,
    check_limits,
    check_overrides,
    check_service,
    check_sources,
    check_url,
)
from raypipe.serve.store import RenderRecord, Store
from raypipe.serve.webhooks import Webhooks
from raypipe.storage import Storage

log = logging.getLogger("raypipe")

FIELDS = {"job", "overrides", "webhook_url", "metadata", "template", "row"}
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
SAVE_EVERY_S = 0.25  # a record's progress is written at most this often (its status at each change)


@dataclass(frozen=True)
class Caller:
    """Who asks: an API key's id and its outputs' folder ("" and "public" without keys)."""

    key_id: str = ""
    prefix: str = "public"


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def searchpath(overrides: list[str]) -> list[str]:
    """The folders of `hydra.searchpath=[file://A,file://B]` among the overrides (--config-dir's)."""
    folders = []
    for o in overrides:
        if o.startswith("hydra.searchpath="):
            entries = o.partition("=")[2].strip("[]").split(",")
            folders += [e.strip().removeprefix("file://") for e in entries if e.strip()]
    return folders


class ServiceVideo(JobVideo):
    """A request's job as the engine's video: its id is the render's, and its planned duration
    is held to serve.max_duration_s (a clip's is known only once probed)."""

    def __init__(self, cfg: DictConfig, render_id: str, run_dir: str, limits: DictConfig):
        super().__init__(cfg, run_dir)
        self.id, self.limits = render_id, limits

    def plan(self) -> Plan:
        plan = super().plan()
        check_duration(plan.duration, self.limits)
        return plan


class RenderService:
    def __init__(self, overrides: list[str], executor=None):
        """`overrides`: the service's (`serve.root=...`, `detector=saliency`), before every request's."""
        self.overrides = list(overrides)
        self.cfg = compose(self.overrides)
        s = self.cfg.serve
        check_service(s)
        self.store = Store(s.root)
        self.auth = s.auth if s.auth is not None else not loopback(s.host)
        self.allowed_roots = list(s.allowed_roots or [])
        self.secret = s.webhook_secret or os.environ.get("RAYPIPE_WEBHOOK_SECRET")
        self.webhooks = Webhooks(self.secret or "", list(s.allowed_hosts), s.webhook_tries, s.webhook_backoff_s)
        run = os.path.join(self.store.root, "run")
        options = EngineOptions(run_root=run, run_dir=run, expected=None, max_in_flight=s.max_in_flight, quiet=True,
                                nice=s.nice)
        self.engine = Engine(self.cfg, options, executor=executor)
        self.started = time.time()
        self.stopping: str | None = None
        self._handles: dict[str, VideoHandle] = {}
        self._saved: dict[str, float] = {}
        self._compose = threading.Lock()  # Hydra's global state serves one composition at a time
        self._base = pickle.dumps(self.cfg)  # what a request's job is merged into (raypipe.batch's way)
        self._job_free = not any(o.lstrip("+~").startswith("job.") for o in self.overrides)
        self.templates = [CONF / "job", *(Path(f) / "job" for f in searchpath(self.overrides))]
        self._loop = threading.Thread(target=self.engine.run, name="engine", daemon=True)
        self._recover()

    # --- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop.start()

    @property
    def ready(self) -> bool:
        return self._loop.is_alive() and self.stopping is None

    def close(self, reason: str = "the service stopped") -> None:
        """Stops every render under way (their tasks cancelled, nothing published); each stays
        queued, to be taken up again from the chunk cache when the service starts again."""
        self.stopping = reason
        for handle in list(self._handles.values()):
            handle.cancel(reason)
        self.engine.seal()
        if self._loop.is_alive():
            self._loop.join(timeout=120)
        self.engine.close()
        self.webhooks.close()

    def _recover(self) -> None:
        """Renders under way when the service last stopped, closed or killed, are submitted again,
        oldest first: the chunks they had made come from the cache. One whose job cannot be read
        back is failed with the reason: none stays `rendering` for ever."""
        for record in reversed(self.store.listing()):
            if record.ended:
                continue
            was = record.status
            self._discard(record)
            cfg = self.store.job(record.id)
            if cfg is None:
                self._end(record, "failed", f"service: it stopped while this render was {was}, and its job could "
                                            "not be read back; submit it again")
                continue
            record.requeue(time.time())
            self.store.save(record)
            self._start(record, cfg)

    def _discard(self, record: RenderRecord) -> None:
        shutil.rmtree(os.path.join(self.store.root, "run", record.id), ignore_errors=True)
        output = self._output(record.id, self._prefix_of(record))
        if os.path.exists(output):
            os.remove(output)

    def _prefix_of(self, record: RenderRecord) -> str:
        return f"key-{record.key_id}" if record.key_id else "public"

    def _output(self, render_id: str, prefix: str) -> str:
        return os.path.join(self.store.root, "outputs", prefix, f"{render_id}.mp4")

    # --- requests -------------------------------------------------------------------------------

    def submit(self, body: bytes, caller: Caller, idempotency_key: str | None = None) -> tuple[RenderRecord, bool]:
        """(the render's record, whether this request made it: False for an idempotent retry)."""
        s = self.cfg.serve
        if self.stopping:
            raise Refused(503, "service", f"stopping: {self.stopping}")
        if len(body) > s.max_body_bytes:
            raise Refused(413, "body", f"{len(body)} bytes, over serve.max_body_bytes ({s.max_body_bytes})")
        request = self._parse(body)
        queued = self.store.open_count(caller.key_id)
        if queued >= s.max_queued_per_key:
            raise Refused(429, "renders", f"{queued} renders of this key have not ended, serve.max_queued_per_key "
                                          f"is {s.max_queued_per_key}: wait for one to end")
        render_id = "r_" + secrets.token_hex(8)
        cfg = self._config(request, render_id)
        cfg.job.output = self._output(render_id, caller.prefix)
        check_limits(cfg, s)
        check_sources(cfg, self.allowed_roots, list(s.allowed_hosts))
        with self.store.locked():
            if idempotency_key is not None:
                first, same = self.store.claim(caller.key_id, idempotency_key, body, render_id)
                if not same:
                    raise Refused(409, "Idempotency-Key", "was used with another body; a new render needs a new key")
                if first != render_id:
                    return self.store.get(first), False
            now = time.time()
            record = RenderRecord(render_id, caller.key_id, now, status_since=now,
                                  metadata=request.get("metadata") or {}, webhook_url=request.get("webhook_url"))
            self.store.add(record)
        self.store.keep_job(render_id, cfg)
        self._start(record, cfg)
        return record, True

    def _start(self, record: RenderRecord, cfg: DictConfig) -> None:
        run_dir = os.path.join(self.store.root, "run", record.id)
        handle = self.engine.submit(ServiceVideo(cfg, record.id, run_dir, self.cfg.serve), Storage(run_dir))
        self._handles[record.id] = handle
        handle.on_change(self._changed)
        handle.on_end(self._ended)

    def _parse(self, body: bytes) -> dict:
        try:
            request = json.loads(body or b"null")
        except ValueError as e:
            raise Refused(400, "body", f"not JSON: {e}") from None
        if not isinstance(request, dict):
            raise Refused(400, "body", "must be a JSON object: {job, overrides, webhook_url, metadata}")
        unknown = sorted(set(request) - FIELDS)
        if unknown:
            raise Refused(422, unknown[0], f"no such field (the fields are {', '.join(sorted(FIELDS))})")
        if ("job" in request) == ("template" in request):
            raise Refused(422, "job", "give either job (a job's schema) or template and row")
        check_overrides(request.get("overrides", []))
        metadata = request.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise Refused(422, "metadata", "must be a JSON object")
        if len(json.dumps(metadata or {})) > 16 * 1024:
            raise Refused(413, "metadata", "over 16 KiB")
        if request.get("webhook_url") is not None:
            if not self.secret:
                raise Refused(422, "webhook_url", "the service has no serve.webhook_secret (nor "
                                                  "RAYPIPE_WEBHOOK_SECRET) to sign webhooks with")
            check_url(request["webhook_url"], "webhook_url", list(self.cfg.serve.allowed_hosts))
        return request

    def _config(self, request: dict, render_id: str) -> DictConfig:
        overrides = [*self.overrides, *request.get("overrides", [])]
        if "job" in request:
            job = request["job"]
            if not isinstance(job, dict):
                raise Refused(422, "job", "must be a JSON object: a job's section ({name, segments}) or "
                                          "{job: ..., render: ...}")
            extra = sorted(set(job) - {"job", "render"}) if "job" in job else []
            if extra:
                raise Refused(422, extra[0], "a request sets only its job and render sections")
            fragment = job if "job" in job else {"job": job}
            if set(fragment) == {"job"} and not request.get("overrides") and self._job_free:
                return self._merged(fragment)
            with self._compose:
                return config(job, overrides)
        with self._compose:
            template, row = request["template"], request.get("row") or {}
            if not isinstance(template, str) or not TEMPLATE_NAME.fullmatch(template) or \
                    not any((folder / f"{template}.yaml").is_file() for folder in self.templates):
                raise Refused(422, "template", f"no template named {template!r} in "
                                               f"{', '.join(str(f) for f in self.templates)}")
            if not isinstance(row, dict):
                raise Refused(422, "row", "must be a JSON object of the template's fields")
            cfg = config(template, overrides)
            return row_config(cfg, Row(1, str(row.get("id", render_id)), row, None, False), os.getcwd())

    def _merged(self, fragment: dict) -> DictConfig:
        """The service's config with the request's job merged in: what composing `+job=` gives
        where nothing else differs (a test pins it), in ~8 ms instead of ~150 (Hydra's
        composition, one at a time), so that a POST answers well under 100 ms. Each request
        merges into a copy of its own (unpickled: merge's own deep copy of it would cost 5 ms
        more): no config is shared between threads."""
        unknown = unknown_key(fragment)
        if unknown:
            raise ConfigError(unknown)
        try:
            return OmegaConf.unsafe_merge(pickle.loads(self._base), fragment)
        except OmegaConfBaseException as e:
            raise ConfigError(hydra_error_line(e)) from None

    def cancel(self, render_id: str, caller: Caller) -> RenderRecord | None:
        """None where unknown; a render that has ended as cancelled is answered as it is."""
        record = self.store.get(render_id, caller.key_id)
        if record is None:
            return None
        handle = self._handles.get(render_id)
        if record.ended:
            if record.status != "cancelled":
                raise Refused(409, "status", f"the render has already ended: {record.status}")
            return record
        if record.status == "muxing":  # its chunks are all made: the mux publishes it
            raise Refused(409, "status", "the render is muxing: it will be published")
        if handle is not None:
            handle.cancel("cancelled by the client")
        return record

    def stats(self) -> dict:
        records = self.store.listing()
        by = Counter(r.status for r in records)
        hours = max(1e-6, (time.time() - self.started) / 3600)
        done = sum(1 for r in records if r.status == "succeeded" and (r.ended_at or 0) >= self.started)
        detector = self.engine.detector
        return {"renders": dict(by), "videos_per_hour": round(done / hours, 1),
                "detector_loads": detector.loads if detector is not None else 0,
                "queue": by.get("queued", 0), "in_flight": sum(by.get(s, 0) for s in ("detecting", "rendering",
                                                                                      "muxing")),
                "uptime_s": round(time.time() - self.started, 1)}

    # --- the engine's side (its threads) -----------------------------------------------------------

    def _changed(self, handle: VideoHandle) -> None:
        record = self.store.get(handle.id)
        if record is None or record.ended or handle.status.ended:
            return
        now = time.time()
        moved = handle.status.value != record.status
        record.move(handle.status.value, now)
        done, total = handle.progress()
        record.frames_done, record.frames_total = done, total
        if total:  # the end (muxed, published) is the last 1%
            record.progress = max(record.progress, min(0.99, done / total))
        if moved or now - self._saved.get(record.id, 0.0) >= SAVE_EVERY_S:
            self._saved[record.id] = now
            self.store.save(record)

    def _ended(self, handle: VideoHandle, end: VideoEnd) -> None:
        record = self.store.get(handle.id)
        self._handles.pop(handle.id, None)
        self._saved.pop(handle.id, None)
        shutil.rmtree(os.path.join(self.store.root, "run", handle.id), ignore_errors=True)  # its empty folder
        if record is None:
            return
        if end.status is VideoStatus.SUCCEEDED:
            out = end.report.output
            record.output = {"uri": out, "size": os.path.getsize(out), "duration": end.report.duration_s}
            record.frames_done = record.frames_total = end.frames
            record.frames_reused = end.report.cache.get("frames_reused", 0)
            self._end(record, "succeeded", None)
        elif self.stopping is not None and end.status is VideoStatus.CANCELLED:
            self.store.save(record)  # as it was: the next start takes it up again
        elif end.status is VideoStatus.CANCELLED:
            self._end(record, "cancelled", "cancelled by the client")
        else:
            error = end.error
            self._end(record, "failed", str(error) if isinstance(error, RaypipeError) else first_line(error))

    def _end(self, record: RenderRecord, status: str, error: str | None) -> None:
        record.error = error.splitlines()[0] if error else None
        record.move(status, time.time())
        self.store.save(record)
        self.store.drop_job(record.id)
        if record.webhook_url and self.stopping is None:
            self.webhooks.deliver(record.webhook_url, record.public())
