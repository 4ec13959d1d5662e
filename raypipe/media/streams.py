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

from raypipe.errors import MediaError, first_line
from raypipe.media.cards import PREFIXES as CARDS
from raypipe.storage import resolve


@dataclass
class ReadCounter:
    """Bytes read from storage by one task (or the driver, or the muxer): it goes in the report."""

    bytes: int = 0


# Sources made from their own text, read from no file: scikit-image's sample photographs and
# cards (raypipe.media.cards).
GENERATED = ("sample:", *CARDS)


def generated(uri: str) -> bool:
    """Whether a source is made from its name rather than read from a file."""
    return uri.startswith(GENERATED)


def normalize(uri: str) -> str:
    """Absolute local paths, so that every worker, whatever its cwd, reads the same file."""
    if generated(uri) or "://" in uri:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


# Remote reads: the first request after a seek fetches MIN_AHEAD (an index, a key frame's
# first packets), and each one that follows on where the last ended fetches twice as much,
# up to the read-ahead limit: few requests for a long sequential read, little fetched and
# left unused where a decoder jumps (to an index at the end of the file, to a range).
MIN_AHEAD = 64 << 10
MAX_AHEAD = 2 << 20


class _Counted(io.RawIOBase):
    """A pyarrow random-access file as a Python binary file (what PyAV and Pillow take).
    Remotely, each read from storage is one ranged request: reads go through a read-ahead
    window (see MIN_AHEAD); locally they go to the file as asked."""

    def __init__(self, native, counter: ReadCounter | None, remote: bool):
        self._f, self._counter, self._remote = native, counter, remote
        self._size = native.size()
        self._pos = 0
        self._window, self._at = b"", 0
        self._ahead, self._limit = MIN_AHEAD, MAX_AHEAD

    def read_ahead(self, limit: int) -> None:
        """The most one request fetches: a decoder that knows the stream's bitrate sizes it
        to a fraction of a second, so a range's last request overshoots it by little."""
        self._limit = max(MIN_AHEAD, min(MAX_AHEAD, int(limit)))
        self._ahead = min(self._ahead, self._limit)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _fetch(self, pos: int, n: int) -> bytes:
        data = self._f.read_at(n, pos)
        if self._counter is not None:
            self._counter.bytes += len(data)
        return data

    def readinto(self, buffer) -> int:
        n, pos = len(buffer), self._pos
        if not self._remote:
            data = self._fetch(pos, n)
        else:
            offset = pos - self._at
            if not 0 <= offset < len(self._window):
                follows = bool(self._window) and offset == len(self._window)
                self._ahead = min(self._limit, 2 * self._ahead) if follows else MIN_AHEAD
                self._window, self._at = self._fetch(pos, min(max(n, self._ahead), max(0, self._size - pos))), pos
                offset = 0
            data = self._window[offset:offset + n]
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._f.close()
            self._window = b""
        super().close()


def open_source(uri: str, counter: ReadCounter | None = None) -> io.BufferedReader:
    """A seekable binary stream over a local path or a storage URI; MediaError if missing."""
    try:
        fs, path = resolve(uri)
        native = fs.open_input_file(path)
    except FileNotFoundError:
        raise MediaError(f"no such file: {uri}") from None
    except (OSError, ValueError) as e:
        reason = first_line(e)
        if "not found" in reason.lower() or "does not exist" in reason.lower():
            raise MediaError(f"no such file: {uri}") from None
        raise MediaError(f"cannot read {uri}: {reason}") from None
    return io.BufferedReader(_Counted(native, counter, not isinstance(fs, pafs.LocalFileSystem)),
                             buffer_size=64 << 10)
