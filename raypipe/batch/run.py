"""Many videos in one run: an engine (raypipe.engine.engine) fed by a table's rows. Every row
is checked before any work; one detector serves the whole batch (CLIP loads once), each
distinct source (by content) detected once; at most `batch.max_videos_in_flight` videos render
at a time, each muxed and published as soon as its chunks are in. A failing row is recorded and
the others go on; manifest.jsonl in the batch's root says what became of every row as it goes.
"""
from __future__ import annotations

import json
import os
import time

from omegaconf import DictConfig

from raypipe.batch.manifest import BatchReport, Manifest, Record, RootLock, RowStatus
from raypipe.batch.rows import Row, read_rows
from raypipe.batch.videos import Published, Video, check, default_root, plan_variant, plan_video, variant_where
from raypipe.detection import detector
from raypipe.engine.driver import run_location, write_record
from raypipe.engine.engine import Engine, EngineOptions
from raypipe.engine.video import VideoEnd, VideoHandle, VideoStatus
from raypipe.errors import CancelToken, JobError, RaypipeError, first_line
from raypipe.look.batch_page import batch_html
from raypipe.plan.timeline import Plan
from raypipe.plan.variants import Variant, named, variants
from raypipe.storage import Storage


def checked(cfg: DictConfig, run_dir: str, skip_published: bool = True,
            sources: bool = True) -> tuple[list[Row], list[Video], list[Record], str]:
    """Every row checked as a render checks a job (`sources=False`: all but what reads the
    sources, which a batch checks for each row as it comes to it); the batch itself refused (a
    JobError) where its outputs collide or its table cannot be read."""
    b = cfg.batch
    if not b.rows:
        raise JobError("batch.rows", "is required: a CSV, JSONL or Parquet file with a row per video")
    if b.max_videos_in_flight < 1:
        raise JobError("batch.max_videos_in_flight", f"must be >= 1 (got {b.max_videos_in_flight})")
    if b.detector_actors < 1:
        raise JobError("batch.detector_actors", f"must be >= 1 (got {b.detector_actors})")
    variants(cfg)  # each variant's name and size; its layers are checked with each row's
    rows = read_rows(b.rows)
    root = b.root or default_root(cfg)
    base = os.path.dirname(os.path.abspath(b.rows)) if "://" not in b.rows else ""
    allowed = list(b.allowed_roots) if b.allowed_roots is not None else [base or b.rows.rsplit("/", 1)[0]]
    videos, failed, outputs = [], [], {}
    published = Published() if skip_published else None
    for row in rows:
        try:
            video = check(cfg, row, root, base, allowed, run_dir, published, sources)
        except RaypipeError as e:
            failed.append(Record(row.id, row.number, RowStatus.FAILED, None, error=str(e)))
            continue
        outputs.setdefault(video.output, []).append(row)
        videos.append(video)
    clashes = [f"rows {', '.join(r.id for r in rs)} -> {out}" for out, rs in outputs.items() if len(rs) > 1]
    if clashes:
        raise JobError("batch.output", f"rows share an output ({'; '.join(clashes)}); name outputs by a unique field")
    return rows, videos, failed, root


class RowVideo:
    """A row as the engine's video: its config made when the engine comes to it, let go at its end."""

    def __init__(self, video: Video, run_dir: str):
        self.video, self.run_dir, self.reads = video, run_dir, {}
        self.id, self.where, self.output = video.row.id, video.row.where, video.output

    def load(self) -> DictConfig:
        return self.video.load()

    def plan(self) -> Plan:
        return self.video.plan or plan_video(self.video, self.run_dir)

    def unload(self) -> None:
        self.video.unload()


class RowVariant:
    """One variant of a row (render.variants): the row's config at the variant's size, its
    output named after it."""

    def __init__(self, video: Video, index: int, name: str, run_dir: str):
        self.video, self.index, self.name, self.run_dir, self.reads = video, index, name, run_dir, {}
        self.id, self.where = f"{video.row.id}-{name}", variant_where(video.row, name)
        self.output = named(video.output, name)
        self._variant: Variant | None = None

    def load(self) -> DictConfig:
        if self._variant is None:
            self._variant = variants(self.video.load())[self.index]
            self._variant.cfg.job.output = self.output
        return self._variant.cfg

    def plan(self) -> Plan:
        self.load()
        return plan_variant(self.video, self._variant, self.run_dir)

    def unload(self) -> None:
        self._variant = None
        self.video.unload()


class RowBook:
    """The manifest, kept as the engine ends each row; with fail_fast, the first failure."""

    def __init__(self, manifest: Manifest, on_progress, fail_fast: bool):
        self.manifest, self.on_progress, self.fail_fast = manifest, on_progress, fail_fast
        self.first_failure: BaseException | None = None

    def add(self, record: Record, error: BaseException | None = None) -> None:
        self.manifest.add(record)
        if self.on_progress is not None:
            self.on_progress(record)
        if record.status is RowStatus.FAILED and self.first_failure is None:
            self.first_failure = error if isinstance(error, RaypipeError) else JobError(
                f"row {record.id}", record.error or "failed")

    def ended(self, video: Video, end: VideoEnd, variant: str | None = None, output: str | None = None) -> None:
        if end.status is VideoStatus.SUCCEEDED:
            self.add(Record(video.row.id, video.row.number, RowStatus.DONE, output or video.output, end.frames,
                            end.seconds, variant=variant))
        else:
            self.add(Record(video.row.id, video.row.number, RowStatus.FAILED, None,
                            error=first_line(end.error) if end.error else end.status.value, variant=variant),
                     end.error)

    def check(self) -> None:
        """With fail_fast, the batch ends with its first failed row's error."""
        if self.fail_fast and self.first_failure is not None:
            raise self.first_failure


def render_batch(cfg: DictConfig, run_dir: str, quiet: bool = False, cancel: CancelToken | None = None,
                 on_progress=None) -> BatchReport:
    """Renders every row of `cfg.batch.rows`; `on_progress(record)` hears each row's end."""
    t0, stages = time.perf_counter(), {}
    root = cfg.batch.root or default_root(cfg)
    with RootLock(root):  # before the checks: rows another batch published meanwhile are skipped
        rows, videos, failed, root = checked(cfg, run_dir, sources=False)
        stages["validate"] = round(time.perf_counter() - t0, 3)
        manifest = Manifest(root)
        book = RowBook(manifest, on_progress, cfg.batch.fail_fast)
        try:
            for record in failed:
                book.add(record)
                book.check()
            todo = []
            for video in videos:  # published by an earlier run of the same command: done
                if video.published:
                    book.add(Record(video.row.id, video.row.number, RowStatus.SKIPPED, video.output))
                else:
                    todo.append(video)
            t1 = time.perf_counter()
            engine = _render(cfg, run_dir, todo, book, quiet, cancel)
            stages["render"] = round(time.perf_counter() - t1, 3)
        finally:
            manifest.close()
    report = _report(cfg, root, manifest, rows, engine, stages, round(time.perf_counter() - t0, 3))
    record = report.to_dict()
    write_record(lambda folder: {"report.json": json.dumps(record, indent=2).encode(),
                                 "report.html": batch_html(record, folder).encode()},
                 run_dir, Storage(run_location(cfg.storage.root, run_dir)))
    return report


def _render(cfg: DictConfig, run_dir: str, todo: list[Video], book: RowBook, quiet: bool,
            cancel: CancelToken | None) -> Engine:
    run_root = run_location(cfg.storage.root, run_dir)
    options = EngineOptions(run_root=run_root, run_dir=run_dir, expected=len(todo) * max(1, len(cfg.render.variants)),
                            max_in_flight=cfg.batch.max_videos_in_flight, detector_actors=cfg.batch.detector_actors,
                            quiet=quiet)
    engine = Engine(cfg, options, cancel)
    with engine:
        for video in todo:
            folder = f"{run_root.rstrip('/')}/videos/{video.row.id}"
            for spec in _specs(cfg, video, run_dir, book):
                handle = engine.submit(spec, Storage(f"{folder}/{spec.name}" if isinstance(spec, RowVariant)
                                                     else folder))
                handle.on_end(_Ended(book, spec))
        engine.seal()
        if todo:
            engine.run(stop=book.check)
    return engine


def _specs(cfg: DictConfig, video: Video, run_dir: str, book: RowBook) -> list:
    """The row's video, or with render.variants a video per variant not yet published (one an
    earlier run published is recorded as skipped)."""
    if not cfg.render.variants:
        return [RowVideo(video, run_dir)]
    specs, published = [], Published()
    for i, v in enumerate(cfg.render.variants):
        spec = RowVariant(video, i, str(v.name), run_dir)
        if published(spec.output):
            book.add(Record(video.row.id, video.row.number, RowStatus.SKIPPED, spec.output, variant=spec.name))
        else:
            specs.append(spec)
    return specs


class _Ended:
    """A video's end, told to the book (a named callable: the engine keeps none of the batch's state)."""

    def __init__(self, book: RowBook, spec):
        self.book, self.spec = book, spec

    def __call__(self, handle: VideoHandle, end: VideoEnd) -> None:
        variant = self.spec.name if isinstance(self.spec, RowVariant) else None
        self.book.ended(self.spec.video, end, variant, self.spec.output)


def _report(cfg: DictConfig, root: str, manifest: Manifest, rows: list[Row], engine: Engine, stages: dict,
            seconds: float) -> BatchReport:
    records, stats = manifest.records, engine.stats
    done = sum(r.status is RowStatus.DONE for r in records)
    return BatchReport(
        rows=cfg.batch.rows, root=root, manifest=manifest.path, videos=len(rows), done=done,
        failed=sum(r.status is RowStatus.FAILED for r in records),
        skipped=sum(r.status is RowStatus.SKIPPED for r in records),
        frames=stats.frames, seconds=seconds, videos_per_hour=round(3600 * done / seconds, 1) if seconds else 0.0,
        detector=stats.detector or detector.resolve_kind(cfg.detector)[0],
        detector_loads=stats.detector_loads, detector_actors=stats.detector_actors, executor=stats.executor,
        ray_started=stats.ray_started, task_seconds=round(stats.task_seconds, 3),
        detect_seconds=stats.detect_seconds, retries=stats.retries, stages=stages, records=records,
        variants=len(cfg.render.variants))
