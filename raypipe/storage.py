"""Run storage on pyarrow.fs: a local path by default, or any URI pyarrow resolves (s3://…).

Every write is atomic: the bytes go to a temporary name beside the target, then a rename
makes them visible, so a reader never sees a half-written chunk, report or video.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pyarrow.fs as pafs


_LOCAL = pafs.LocalFileSystem()


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in uri:
        return _LOCAL, os.path.abspath(uri)
    return pafs.FileSystem.from_uri(uri)


@functools.lru_cache(maxsize=16)
def _root(root: str) -> tuple[pafs.FileSystem, str]:
    """One filesystem per run root, reused for every chunk (an S3 filesystem may look up
    its bucket's region when it is made)."""
    fs, base = resolve(root)
    return fs, base.rstrip("/")


def _atomic_write(fs: pafs.FileSystem, path: str, write) -> None:
    parent, name = path.rsplit("/", 1)
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with fs.open_output_stream(tmp) as out:
            write(out)
        fs.move(tmp, path)
    except BaseException:
        _delete_quietly(fs, tmp)
        raise


def _copy_from(local_path: str):
    def write(out):
        with open(local_path, "rb") as src:
            shutil.copyfileobj(src, out, 8 << 20)

    return write


@contextmanager
def publishing(uri: str, suffix: str = "") -> Iterator[str]:
    """A local path to write a file to; when the block ends without error, the file appears
    at `uri` atomically. On a local filesystem it is written beside its target and renamed,
    so a chunk or a video is never copied; elsewhere it is written to a temporary folder,
    uploaded, and removed. `suffix` ends the temporary name (encoders pick formats by it)."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        parent, name = os.path.split(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{name}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        with tempfile.TemporaryDirectory(prefix="raypipe-out-") as folder:
            tmp = os.path.join(folder, "file" + suffix)
            yield tmp
            _atomic_write(fs, path, _copy_from(tmp))


def _delete_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except (FileNotFoundError, OSError):
        pass


@dataclass(frozen=True)
class Storage:
    """A directory for one run's files, named relative to its root; cheap to pickle into
    every task."""

    root: str

    def _locate(self, rel: str) -> tuple[pafs.FileSystem, str]:
        fs, base = _root(self.root)
        return fs, f"{base}/{rel}"

    def uri(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}"

    def put_file(self, local_path: str, rel: str) -> str:
        """Copies a local file to `rel`, atomically; returns its URI."""
        _atomic_write(*self._locate(rel), _copy_from(local_path))
        return self.uri(rel)

    def writing(self, rel: str, suffix: str = ""):
        """`publishing` a file of this run: a local path to write to, stored at `rel` after."""
        return publishing(self.uri(rel), suffix)

    def write_bytes(self, rel: str, data: bytes) -> None:
        _atomic_write(*self._locate(rel), lambda out: out.write(data))

    def check_writable(self) -> None:
        """Fails now, before any work, when the root cannot be written (no bucket, no access)."""
        fs, base = _root(self.root)
        fs.create_dir(base, recursive=True)
        probe = f"{base}/.raypipe-write-check-{uuid.uuid4().hex[:12]}"  # renders check side by side
        with fs.open_output_stream(probe) as out:
            out.write(b"ok")
        fs.delete_file(probe)

    def delete_dir(self, rel: str) -> None:
        fs, path = self._locate(rel)
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)
