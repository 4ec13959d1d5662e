"""What became of every row: its `Record` in the batch root's manifest.jsonl, written as the
batch goes (a crash leaves a true record), and the batch's typed report.

A root is shared by every batch that writes to it (a template's rows of Monday, then of
Tuesday): its manifest keeps every record of every batch, appended, and one batch at a time
works in it (`RootLock`). A batch started while another works in the same root waits for it,
then skips the rows that one published: a cron job that runs again before the last run ended
renders nothing twice and loses no record.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from enum import Enum

from raypipe.errors import JobError
from raypipe.storage import Storage

log = logging.getLogger("raypipe")


class RowStatus(str, Enum):
    """A str, so that manifest.jsonl and report.json say the name."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # published by an earlier run


@dataclass
class Record:
    """A row's line in manifest.jsonl."""

    id: str
    row: int
    status: RowStatus
    output: str | None
    frames: int = 0  # rendered by this run (0 for a skipped row)
    seconds: float = 0.0
    error: str | None = None
    variant: str | None = None  # with render.variants: a record per row and variant

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status.value}


@dataclass
class BatchReport:
    rows: str
    root: str
    manifest: str
    videos: int
    done: int
    failed: int
    skipped: int
    frames: int
    seconds: float
    videos_per_hour: float
    detector: str  # what ran, or (every source from the cache) what would have
    detector_loads: int
    detector_actors: int  # the detector's Ray actors; 0: the driver detected
    executor: str
    ray_started: bool
    task_seconds: float  # the rendering work: every task's seconds, summed
    # The detection work: each row's looks, the detector's calls and its model's load, summed
    # (in a driver's threads; with detector actors, the seconds the driver waited on them).
    detect_seconds: float
    retries: list  # tasks run again after their worker or node was lost: {"start", "frames", "attempt", "reason"}
    stages: dict
    records: list[Record] = field(default_factory=list)
    variants: int = 0  # render.variants: the videos of each row

    def to_dict(self) -> dict:
        return {**asdict(self), "records": [r.to_dict() for r in self.records]}

    def summary(self) -> str:
        """What became of the batch's videos, counted as videos: `1 done, 0 skipped, 1 failed
        of 2 videos (1 row x 2 variants)`. A row that failed before its variants were made
        (one record) counts as all its videos."""
        each = max(1, self.variants)
        counts = {status: sum(1 if r.variant is not None else each for r in self.records if r.status is status)
                  for status in RowStatus}
        of = (f"{self.videos} rows" if not self.variants else
              f"{self.videos * each} videos ({self.videos} row{'s' * (self.videos != 1)} x {each} variants)")
        return (f"{counts[RowStatus.DONE]} done, {counts[RowStatus.SKIPPED]} skipped, {counts[RowStatus.FAILED]} "
                f"failed of {of}")


class RootLock:
    """One batch at a time in a root on a local disk: an exclusive lock on `batch.lock`, held
    for the batch's life and let go by the kernel if its process dies. A batch that finds it
    held says so once and waits. An object store has no such lock: there a second batch works
    beside the first, and its manifest keeps both's records unless they write it at once."""

    NAME = "batch.lock"

    def __init__(self, root: str):
        self.root, self._file = root, None

    def __enter__(self) -> RootLock:
        if "://" in self.root:
            return self
        try:
            os.makedirs(self.root, exist_ok=True)
            self._file = open(os.path.join(self.root, self.NAME), "a+")
        except OSError as e:
            raise JobError("batch.root", f"cannot write {self.root} ({e.strerror or e})") from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another batch"
            log.warning("batch.root %s is in use by %s: waiting for it to end", self.root, holder)
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # the lock goes with the file


class Manifest:
    """manifest.jsonl: appended on a local disk; on an object store (which has no append)
    read once, then rewritten with the records before this batch's and its own, at most
    every few seconds. `records` are this batch's."""

    EVERY_S = 5.0

    def __init__(self, root: str):
        self.store, self.records, self._written = Storage(root), [], 0.0
        self.local = "://" not in root
        self.path = self.store.uri("manifest.jsonl")
        self._before = b""
        if self.local:
            os.makedirs(root, exist_ok=True)
            self._file = open(self.path, "a")
        else:
            try:
                self._before = self.store.read_bytes("manifest.jsonl")
            except FileNotFoundError:
                pass

    def add(self, record: Record) -> None:
        self.records.append(record)
        if self.local:
            self._file.write(json.dumps(record.to_dict()) + "\n")
            self._file.flush()
        elif time.monotonic() - self._written >= self.EVERY_S:
            self._rewrite()

    def _rewrite(self) -> None:
        ours = "".join(json.dumps(r.to_dict()) + "\n" for r in self.records).encode()
        self.store.write_bytes("manifest.jsonl", self._before + ours)
        self._written = time.monotonic()

    def close(self) -> None:
        if self.local:
            self._file.close()
        else:
            self._rewrite()
