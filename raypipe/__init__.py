"""raypipe: a subject-aware video renderer that scales from a laptop to a Ray cluster.

`raypipe.render`, `raypipe.detect` and `raypipe.preview` are the CLI's commands as functions
(see `raypipe.api`); they are imported on first use, so that `import raypipe` stays light
for the segment workers, which import this package too.
"""


class RaypipeError(Exception):
    """An error the user can act on; its message is one line that names the field or file."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM: the render unwinds (its tasks cancelled, partial files removed)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_STOPS: list[int] = []


def stop(signum: int, frame=None) -> None:
    """The CLI's handler for SIGINT and SIGTERM. Python raises a handler's exception wherever
    the main thread is, and drops one raised inside a weakref or __del__ callback (seen: a
    Ctrl-C printed as "Exception ignored" and the render went on), so `check_stop` raises it
    again at the render's next safe point."""
    _STOPS.append(signum)
    raise Interrupted(signum)


def stop_requested() -> int | None:
    """The signal that asked this process to stop, if one did."""
    return _STOPS[0] if _STOPS else None


def check_stop() -> None:
    if _STOPS:
        raise Interrupted(_STOPS[0])


def __getattr__(name: str):
    if name in ("render", "detect", "preview", "Result", "Detected"):
        from raypipe import api

        return getattr(api, name)
    raise AttributeError(f"module 'raypipe' has no attribute {name!r}")
