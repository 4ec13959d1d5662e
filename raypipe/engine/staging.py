"""Local files, for Ray's nodes that do not share the driver's disk: each copied into the
run's storage once, when the first video that reads it is detected, and deleted when the last
video in flight that reads it has ended. A long-lived engine's storage holds the files of the
videos in flight and detected ahead, never every video's."""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

from raypipe.errors import MediaError
from raypipe.media import generated
from raypipe.plan.timeline import Plan
from raypipe.storage import Storage


def local_inputs(plan: Plan) -> list[str]:
    """The files a plan reads from the driver's disk (URIs and samples are read as they are)."""
    return [uri for uri in (*plan.sources, *plan.layer_sources, *plan.audio.sources)
            if "://" not in uri and not generated(uri)]


def staged_name(uri: str) -> str:
    """Where in a run's storage a local file is staged: one name per path."""
    return f"inputs/{hashlib.sha1(uri.encode()).hexdigest()[:10]}-{os.path.basename(uri)}"


@dataclass
class _Use:
    uri: str  # the staged copy
    videos: int  # in flight, reading it


class Stager:
    """Stages on the detection thread, releases on the renderers'; the lock covers the
    counts and the delete (a stage of the same path after it uploads anew)."""

    def __init__(self, store: Storage):
        self.store, self.lock = store, threading.Lock()
        self.uses: dict[str, _Use] = {}  # local path -> its staged copy and the videos reading it

    def stage(self, plan: Plan) -> dict[str, str]:
        """The plan's local files -> their staged copies."""
        moved: dict[str, str] = {}
        try:
            for path in dict.fromkeys(local_inputs(plan)):
                with self.lock:
                    use = self.uses.get(path)
                    if use is not None:
                        use.videos += 1
                if use is None:  # the upload outside the lock: releases do not wait for it
                    try:
                        uri = self.store.put_file(path, staged_name(path))
                    except OSError as e:
                        raise MediaError(f"cannot stage {path} for Ray's nodes: {e.strerror or e}") from None
                    with self.lock:
                        use = self.uses.setdefault(path, _Use(uri, 0))
                        use.videos += 1
                moved[path] = use.uri
        except BaseException:
            self.release(moved)
            raise
        return moved

    def release(self, moved: dict[str, str]) -> None:
        with self.lock:
            for path in moved:
                use = self.uses[path]
                use.videos -= 1
                if use.videos == 0:
                    del self.uses[path]
                    self.store.delete(staged_name(path))

    def close(self) -> None:
        """What videos detected ahead of a stop staged goes too."""
        self.store.delete_dir("inputs")
