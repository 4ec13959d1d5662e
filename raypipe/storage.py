"""Run storage on pyarrow.fs: a local path by default, or any URI pyarrow resolves (s3://…).

Every write is atomic, so a reader never sees a half-written chunk, report or video. On a
local disk the bytes go to a temporary name beside the target and a rename shows them. On
S3 a PUT is already atomic (so is a multipart upload, which shows nothing until it is
completed): the complete file goes straight to its key, with no copy and no delete (a copy
fails above 5 GiB). Other filesystems get temp-then-move.

Temporary names carry their writer's host and pid, so that a later sweep (the cache's) can
tell the leftovers of a killed process from a write in progress.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import mmap
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


HOST = socket.gethostname()
TMP_MARK = ".tmp"


def temp_name(name: str, suffix: str = "") -> str:
    """A hidden temporary name for `name`, unique, that says which process writes it."""
    return f".{name}~{HOST}~{os.getpid()}~{uuid.uuid4().hex[:6]}{TMP_MARK}{suffix}"


def writer_of(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temporary name made by `temp_name`; None for any other name."""
    if not name.startswith(".") or TMP_MARK not in name:
        return None
    parts = name[: name.rindex(TMP_MARK)].rsplit("~", 3)  # hostnames have no "~"
    return (parts[1], int(parts[2])) if len(parts) == 4 and parts[2].isdigit() else None


def writer_gone(host: str, pid: int) -> bool:
    """Whether the process that made a temporary file or folder has died (known only for
    processes of this host)."""
    if host != HOST:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


_UPLOADS = "raypipe-out-"


def _upload_folder() -> str:
    """A local folder for a file on its way to remote storage, named by this process. A
    process killed mid-upload (SIGKILL runs no cleanup) leaves its folder; the next one to
    make a folder here removes such leftovers."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        pid = name[len(_UPLOADS):].split("-", 1)[0]
        if name.startswith(_UPLOADS) and pid.isdigit() and writer_gone(HOST, int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_UPLOADS}{os.getpid()}-")


def _is_s3(fs: pafs.FileSystem) -> bool:
    return fs.type_name == "s3"


def _atomic_write(fs: pafs.FileSystem, path: str, data) -> None:
    """Writes `data` (bytes or a memory map of a complete file) to `path` atomically."""
    parent, name = path.rsplit("/", 1)
    if _is_s3(fs):  # no folders to make: pyarrow would PUT a marker object for each level
        _put(fs, path, data)
        return
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/{temp_name(name)}"
    try:
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, path)
    except BaseException:
        _delete_quietly(fs, tmp)
        raise


def _put(fs: pafs.FileSystem, path: str, data) -> None:
    """One object, whole: the data is complete before the stream opens and goes in one
    write call, so no error of ours can end the stream early. pyarrow closes (and so
    completes) a stream whatever happened; an interrupt between opening and writing would
    publish an empty object, which is therefore removed."""
    out = fs.open_output_stream(path)
    written = False
    try:
        out.write(data)
        written = True
    finally:
        try:
            out.close()
        finally:
            if not written:
                _delete_quietly(fs, path)


@contextmanager
def _mapped(local_path: str):
    with open(local_path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield mm


@contextmanager
def publishing(uri: str, suffix: str = "") -> Iterator[str]:
    """A local path to write a file to; when the block ends without error, the file appears
    at `uri` atomically. On a local filesystem it is written beside its target and renamed,
    so a chunk or a video is never copied; elsewhere it is written to a temporary folder,
    uploaded whole, and removed. `suffix` ends the temporary name (encoders pick formats by it)."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        parent, name = os.path.split(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, temp_name(name, suffix))
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        folder = _upload_folder()
        try:
            tmp = os.path.join(folder, "file" + suffix)
            yield tmp
            with _mapped(tmp) as data:
                _atomic_write(fs, path, data)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


# A version of a fetched file that no process of this node has asked for in this long is
# deleted when another version is fetched (a model loads in seconds of being asked for).
UNUSED_COPY_S = 600.0


def local_copy(uri: str, folder: str) -> str:
    """A local file with the bytes of `uri`, fetched into `folder` once for each version of it
    (its size and time), under its own name: a node's processes load a model's weights from
    their disk, not again over the network. One process of the node fetches while the others
    wait for it (a lock on the file's folder); a download is checked for its length and shown
    whole, by a rename. Copies of other versions unused for UNUSED_COPY_S go, and so do the
    downloads of killed processes. A plain path is itself."""
    if "://" not in uri:
        return uri
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"no such file: {uri}")
    name = os.path.basename(path)
    versions = os.path.join(folder, hashlib.sha256(uri.encode()).hexdigest()[:16])
    version = hashlib.sha256(f"{info.size}|{info.mtime_ns}".encode()).hexdigest()[:12]
    target = os.path.join(versions, version, name)
    os.makedirs(versions, exist_ok=True)
    with open(os.path.join(versions, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if not os.path.isfile(target):
            tmp = os.path.join(versions, temp_name(version))
            try:
                os.makedirs(tmp)
                with fs.open_input_stream(path) as src, open(os.path.join(tmp, name), "wb") as out:
                    shutil.copyfileobj(src, out, 8 << 20)
                if (got := os.path.getsize(os.path.join(tmp, name))) != info.size:
                    raise OSError(f"fetched {got} of the {info.size} bytes of {uri}")
                os.rename(tmp, os.path.dirname(target))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        os.utime(os.path.dirname(target))  # in use: kept by the sweeps of other versions' fetches
        now = time.time()
        for other in os.listdir(versions):
            at, writer = os.path.join(versions, other), writer_of(other)
            if other in (version, ".lock") or (writer is not None and not writer_gone(*writer)):
                continue
            if writer is not None or now - os.stat(at).st_mtime > UNUSED_COPY_S:
                shutil.rmtree(at, ignore_errors=True)
    return target


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
        with _mapped(local_path) as data:
            _atomic_write(*self._locate(rel), data)
        return self.uri(rel)

    def writing(self, rel: str, suffix: str = ""):
        """`publishing` a file of this run: a local path to write to, stored at `rel` after."""
        return publishing(self.uri(rel), suffix)

    def write_bytes(self, rel: str, data: bytes) -> None:
        _atomic_write(*self._locate(rel), data)

    def read_bytes(self, rel: str) -> bytes:
        fs, path = self._locate(rel)
        with fs.open_input_stream(path) as f:
            return f.read()

    def files(self, rel: str = "", recursive: bool = True) -> list[tuple[str, int, float]]:
        """Every file under `rel` (in it alone, not `recursive`): (path relative to the root,
        bytes, mtime)."""
        fs, path = self._locate(rel)
        base = _root(self.root)[1]
        infos = fs.get_file_info(pafs.FileSelector(path.rstrip("/"), recursive=recursive, allow_not_found=True))
        return [(i.path[len(base) + 1:], i.size, i.mtime.timestamp() if i.mtime else 0.0)
                for i in infos if i.type == pafs.FileType.File]

    def delete(self, rel: str) -> None:
        _delete_quietly(*self._locate(rel))

    def touch(self, rel: str) -> None:
        """Marks a file as just used, for eviction by last use. Object stores cannot change an
        object's time without rewriting it, so there the time stays the last write's."""
        fs, path = self._locate(rel)
        if isinstance(fs, pafs.LocalFileSystem):
            try:
                os.utime(path)
            except OSError:
                pass

    def check_writable(self) -> None:
        """Fails now, before any work, when the root cannot be written (no bucket, no access)."""
        fs, base = _root(self.root)
        if not _is_s3(fs):
            fs.create_dir(base, recursive=True)
        probe = f"{base}/.raypipe-write-check-{uuid.uuid4().hex[:12]}"  # renders check side by side
        with fs.open_output_stream(probe) as out:
            out.write(b"ok")
        fs.delete_file(probe)

    def delete_dir(self, rel: str) -> None:
        fs, path = self._locate(rel)
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)
