"""Every error raypipe raises on purpose, and the value that asks a render to stop.

Errors carry what they are about and why as attributes (as PyAV's carry errno and filename),
so callers branch on `where` or the class, never on the message's text. `str(error)` is the
one line the CLI prints: `where: reason`.
"""
from __future__ import annotations

import threading


class RaypipeError(Exception):
    """An error the user can act on. `where` names the config key (job.segments[2].duration),
    the file or the row it is about, where one is known; `reason` says what is wrong."""

    def __init__(self, reason: str, where: str | None = None):
        self.reason, self.where = reason, where
        super().__init__(f"{where}: {reason}" if where else reason)


def first_line(e: BaseException) -> str:
    """An exception's message as one line (pyarrow's and Ray's run to many), or its type's name."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


class JobError(RaypipeError, ValueError):
    """A job that cannot be rendered as written; `where` is the key's full path."""

    def __init__(self, where: str, reason: str):
        super().__init__(reason, where)


class ConfigError(RaypipeError, ValueError):
    """The config could not be composed (an unknown key, a missing job file, a bad override)."""


class MediaError(RaypipeError, ValueError):
    """A source or an output that cannot be read or written; the message names the file."""


class EffectError(RaypipeError, ValueError):
    """Bad effect or transition parameters. `unknown` is the parameter the effect does not
    have, `name_unknown` is set when the effect (or transition) itself is unknown."""

    def __init__(self, reason: str, unknown: str | None = None, name_unknown: bool = False):
        super().__init__(reason)
        self.unknown, self.name_unknown = unknown, name_unknown


class CaptionError(RaypipeError, ValueError):
    """A caption that cannot be laid out (a font that is missing, text that cannot fit)."""


class WeightsUnavailable(RaypipeError, RuntimeError):
    """CLIP's weights cannot be had (not cached, no network, a bad checkpoint file)."""


class RenderError(RaypipeError, RuntimeError):
    """A task that could not be rendered (lost with its worker too many times)."""


class MuxError(RaypipeError, RuntimeError):
    """The chunks could not be joined into the video."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM: the render unwinds (its tasks cancelled, partial files removed)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Cancelled(Exception):
    """A task given up because the render stopped for another reason (a sibling failed)."""


class CancelToken:
    """Asks a render to stop: passed down to every frame loop, which calls `check()` once a
    frame; a child token (a task's) also stops when its parent (the render's) does. The
    first reason given is kept and raised again at every later check, because a stop can
    land where Python cannot raise it (a weakref or PyAV I/O callback drops the exception)
    and must still end the render at its next safe point."""

    def __init__(self, parent: CancelToken | None = None):
        self._reason: BaseException | None = None
        self._lock = threading.Lock()
        self._parent = parent  # a stop of the whole render reaches every task of it

    def cancel(self, reason: BaseException | None = None) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason or Cancelled("the render was cancelled")

    @property
    def reason(self) -> BaseException | None:
        if self._reason is None and self._parent is not None:
            return self._parent.reason
        return self._reason

    def check(self) -> None:
        reason = self.reason
        if reason is not None:
            raise reason


# A token that is never cancelled: what a frame loop gets when nothing can stop it from inside
# its process (a Ray worker, which Ray's own cancellation interrupts).
NEVER = CancelToken()
