"""The muxer actor of one video, on the driver's node, as the engine holds it."""
from __future__ import annotations

import logging

import ray

from raypipe.engine import mux
from raypipe.engine.ray_start import get, here
from raypipe.engine.task import SegmentManifest
from raypipe.errors import MuxError

log = logging.getLogger("raypipe")


class MuxerLink:
    """The muxer actor, on the driver's own node (the head under `ray job submit`, which lives
    as long as the render does). The driver keeps every manifest it sends, so a muxer lost
    mid-collection (its process killed) is made again, once, and given them all again: the
    chunks are in storage."""

    def __init__(self, total_frames, duration, audio, output, codec, on_restart=None):
        where = here()
        self._make = lambda: ray.remote(num_cpus=0, scheduling_strategy=where)(mux.Muxer).remote(
            total_frames, duration, audio, output, codec)
        self.actor, self.sent, self.acks, self.restarts = self._make(), [], [], 0
        self._on_restart = on_restart

    def add(self, m: SegmentManifest) -> None:
        self.sent.append(m)
        self.acks.append(self.actor.add.remote(m))

    def finish(self) -> dict:
        try:
            while True:
                try:
                    return get([*self.acks, self.actor.finish.remote()])[-1]
                except ray.exceptions.RayActorError as e:
                    if self.restarts:
                        raise MuxError(f"the muxer was lost twice ({str(e).strip().splitlines()[0]})") from None
                    log.warning("the muxer was lost; starting it again with the %d chunks so far", len(self.sent))
                    self.restarts += 1
                    if self._on_restart is not None:
                        self._on_restart()
                    self.actor = self._make()
                    self.acks = [self.actor.add.remote(m) for m in self.sent]
        finally:  # published or failed, it is done with
            self.abandon()


    def abandon(self) -> None:
        ray.kill(self.actor)  # its process goes now, not whenever Ray collects the handle (the batch's end)
        self.sent, self.acks = [], []


class Deferred:
    """A muxer asked for before Ray is up: the chunks done meanwhile wait for it."""

    def __init__(self, ray, args: tuple):
        self.ray, self.args, self.link, self.early = ray, args, None, []

    def add(self, manifest: SegmentManifest) -> None:
        if self.link is None and not self.ray.up:
            self.early.append(manifest)
        else:
            self._link().add(manifest)

    def _link(self) -> MuxerLink:
        if self.link is None:
            self.link = self.ray._muxer_now(*self.args)
            for m in self.early:
                self.link.add(m)
        return self.link

    def finish(self) -> dict:
        return self._link().finish()

    def abandon(self) -> None:
        self.early = []
        if self.link is not None:
            self.link.abandon()
