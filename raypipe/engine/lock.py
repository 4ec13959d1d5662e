"""One render at a time per output file: a second render given the same `job.output` while
the first runs would publish over its video, and both would print the same path."""
from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager

from raypipe.errors import JobError


@contextmanager
def output_lock(output: str):
    """Holds `.<name>.lock` beside a local output for the render's lifetime, or refuses with
    the holder's pid and host. The kernel releases a flock when its process dies, so a lock
    file left by a killed render is simply taken over. Object-store outputs are not locked:
    pyarrow.fs has no exclusive create, and their publish is one atomic PUT, the last wins.
    A folder the lock cannot be made in (one the check before found writable: root on a
    pseudo file system, a disk gone read-only since) is refused as the check would have."""
    if "://" in output:
        yield
        return
    folder = os.path.dirname(output)
    made = []  # the folders the render would create anyway: removed again if they stay empty
    while not os.path.isdir(folder):
        made.append(folder)
        folder = os.path.dirname(folder)
    path = os.path.join(os.path.dirname(output), f".{os.path.basename(output)}.lock")
    try:
        fd = _take(made, path, output)
        try:
            yield
        finally:
            os.unlink(path)  # before the release: a render waiting on this file then makes a new one
            os.close(fd)
    finally:
        for folder in made:
            if not os.path.isdir(folder):  # not made: the lock failed first
                continue
            try:
                os.rmdir(folder)
            except OSError:  # the video is in it
                break


def _take(made: list[str], path: str, output: str) -> int:
    """The folders made, the lock held and its holder written; an OSError on the way is the
    output's: one line naming job.output (the lock file is removed, the folders by the caller)."""
    fd = None
    try:
        for folder in reversed(made):
            os.mkdir(folder)
        fd = _acquire(path, output)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return fd
    except OSError as e:
        if fd is not None:
            os.unlink(path)
            os.close(fd)
        raise JobError("job.output", f"cannot write {output} ({e.strerror or e})") from None


def _acquire(path: str, output: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").split()
            os.close(fd)
            pid, host = (holder + ["?", "?"])[:2]
            raise JobError("job.output", f"{output} is being rendered by another render (pid {pid} on {host}); "
                                         "wait for it to finish or set another job.output") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file its holder had just removed: lock the one that is there now
