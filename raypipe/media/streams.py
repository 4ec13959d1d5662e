"""Sources as seekable streams from run storage, counting the bytes they read.

Decoders read through these, so a task that shows two seconds of a ten-minute clip in S3
fetches the byte ranges of those two seconds (and the index), never the whole file, and
nothing is written to a temporary folder on the way.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass

import pyarrow.fs as pafs

from raypipe.errors import MediaError
from raypipe.storage import resolve


@dataclass
class ReadCounter:
    """Bytes read from storage by one task (or the driver, or the muxer): it goes in the report."""

    bytes: int = 0


def normalize(uri: str) -> str:
    """Absolute local paths, so that every worker, whatever its cwd, reads the same file."""
    if uri.startswith("sample:") or "://" in uri:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


class _Counted(io.RawIOBase):
    """A pyarrow random-access file as a Python binary file (what PyAV and Pillow take)."""

    def __init__(self, native, counter: ReadCounter | None):
        self._f, self._counter = native, counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._f.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._counter is not None:
            self._counter.bytes += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def open_source(uri: str, counter: ReadCounter | None = None) -> io.BufferedReader:
    """A seekable binary stream over a local path or a storage URI; MediaError if missing."""
    try:
        fs, path = resolve(uri)
        native = fs.open_input_file(path)
    except FileNotFoundError:
        raise MediaError(f"no such file: {uri}") from None
    except (OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "not found" in reason.lower() or "does not exist" in reason.lower():
            raise MediaError(f"no such file: {uri}") from None
        raise MediaError(f"cannot read {uri}: {reason}") from None
    # Remote reads in 1 MiB ranges: one request per MiB rather than one per decoder read;
    # local reads stay small, since a decoder seeking about a file would discard the rest.
    remote = not isinstance(fs, pafs.LocalFileSystem)
    return io.BufferedReader(_Counted(native, counter), buffer_size=(1 << 20) if remote else (64 << 10))
