"""Run storage on pyarrow.fs: a local path by default, or any URI pyarrow resolves (s3://…).

Every write is atomic: the bytes go to a temporary name beside the target, then a rename
makes them visible, so a reader never sees a half-written chunk, report or video.
"""
from __future__ import annotations

import functools
import os
import shutil
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs


@functools.lru_cache(maxsize=None)
def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in uri:
        uri = os.path.abspath(uri)
    return pafs.FileSystem.from_uri(uri)


def open_input(uri: str):
    fs, path = _resolve(uri)
    return fs.open_input_stream(path)


def _atomic_write(uri: str, write) -> None:
    fs, path = _resolve(uri)
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


def publish_file(local_path: str, uri: str) -> None:
    """Copy a finished local file to `uri` atomically (temporary name, then rename)."""
    with open(local_path, "rb") as src:
        _atomic_write(uri, lambda out: shutil.copyfileobj(src, out, 8 << 20))


def fetch_file(uri: str, local_path: str) -> None:
    with open_input(uri) as src, open(local_path, "wb") as dst:
        shutil.copyfileobj(src, dst, 8 << 20)


def exists(uri: str) -> bool:
    fs, path = _resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _delete_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except (FileNotFoundError, OSError):
        pass


@dataclass(frozen=True)
class Storage:
    """A directory for one run's files; cheap to pickle into every task."""

    root: str

    def uri(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}"

    def put_file(self, local_path: str, rel: str) -> str:
        publish_file(local_path, self.uri(rel))
        return self.uri(rel)

    def write_bytes(self, rel: str, data: bytes) -> str:
        _atomic_write(self.uri(rel), lambda out: out.write(data))
        return self.uri(rel)

    def delete_dir(self, rel: str) -> None:
        fs, path = _resolve(self.uri(rel))
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)
