"""The detector in Ray actors: on GPU nodes where it asks for them, and on a cluster's nodes
(the driver, on a head of a few cores, would cap many videos at its own forward passes)."""
from __future__ import annotations

import time
from dataclasses import replace

import ray

from raypipe.detection.info import DetectionInfo
from raypipe.engine.ray_start import get

ACTOR_RESTARTS = 3


class _LoadsTold:
    """What a detector actor calls on each model load. The driver's board has the count before
    the actor goes on, so a load is counted even when its process dies in that same call (its
    result, which would have said so, is lost with it)."""

    def __init__(self, board):
        self.board = board

    def __call__(self, loads: int) -> None:
        ray.get(self.board.loaded.remote(loads))


class DetectorPool:
    """Detector actors that deal each call's sources out among those that have started, in
    turn across calls. The first call waits up to START_S for all of them, then goes on with
    those up; an actor still waiting for a GPU (the cluster has fewer now than asked for, or is
    adding them) gets sources once it starts."""

    START_S = 30.0

    HALT_S = 0.2  # how often a wait asks whether to give up

    def __init__(self, actors: list, cfg, board, halt=None):
        self.actors, self.cfg, self.board, self.ready, self.turn = actors, cfg, board, [], 0
        self.told = _LoadsTold(board)  # with each call, not to the constructor: what an actor is made
        # again from must outlive its node, and Ray keeps a call's arguments for its retries
        self.halt = halt or (lambda: None)
        self.waiting = {a.__ray_ready__.remote(): a for a in actors}
        self.counted = 0  # the model loads that earlier calls' infos reported

    @property
    def loads(self) -> int:
        """The model loads of every actor of the pool so far, those that died included."""
        return ray.get(self.board.loads.remote())

    def _look(self) -> None:
        if not self.waiting:
            return
        timeout = 0.0
        if not self.ready:  # the first call: one, however long it takes, then the others for a while
            self._wait(list(self.waiting), 1)
            timeout = self.START_S
        up = self._wait(list(self.waiting), len(self.waiting), timeout)
        for ref in up:
            get(ref)  # an actor that could not start says why
            self.ready.append(self.waiting.pop(ref))

    def _wait(self, refs: list, count: int, timeout: float | None = None) -> list:
        """ray.wait in short steps, asking `halt` between them: an actor may wait for a GPU
        that never comes, and a stopped batch must not wait with it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = self.HALT_S if deadline is None else max(0.0, min(self.HALT_S, deadline - time.monotonic()))
            up, _ = ray.wait(refs, num_returns=count, timeout=left)
            if len(up) >= count or (deadline is not None and time.monotonic() >= deadline):
                return up
            self.halt()

    def detect(self, sources, prompts, video_ranges, cache) -> tuple[dict, DetectionInfo]:
        self._look()
        n = min(len(self.ready), len(sources)) or 1
        order = self.ready[self.turn:] + self.ready[:self.turn]
        self.turn = (self.turn + n) % len(self.ready)
        refs = [a.detect.remote(self.cfg, tuple(sources[i::n]), prompts, video_ranges, cache, self.told)
                for i, a in enumerate(order[:n])]
        self._wait(refs, len(refs))
        results = get(refs)
        found = {u: v for f, _ in results for u, v in f.items()}
        infos = [info for _, info in results]
        loads = self.loads  # not the infos': a call that ran again after its actor died lost the dead one's
        info = replace(DetectionInfo.merged(infos), clip_loads=loads - self.counted)
        self.counted = loads
        return {u: found[u] for u in sources}, info

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)  # the models' memory goes back before the segments need it

    def __enter__(self) -> DetectorPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
