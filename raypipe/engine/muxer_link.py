"""Each video's muxer, in the engine's one muxers actor on the driver's node, as the engine holds it."""
from __future__ import annotations

import itertools
import logging
import threading

import ray

from raypipe.engine import mux
from raypipe.engine.ray_start import get, here
from raypipe.engine.task import SegmentManifest
from raypipe.errors import MuxError

log = logging.getLogger("raypipe")


class MuxerHost:
    """The engine's muxers actor (mux.Muxers), made on first use on the driver's own node (the
    head under `ray job submit`, which lives as long as the render does), and made again once
    lost: every video's link then opens its muxer there again."""

    def __init__(self):
        self._actor = None
        self._keys = itertools.count()
        self._lock = threading.Lock()  # links are made and finished on the engine's threads

    def actor(self):
        with self._lock:
            if self._actor is None:
                self._actor = ray.remote(num_cpus=0, scheduling_strategy=here())(mux.Muxers).remote()
            return self._actor

    def key(self) -> str:
        return str(next(self._keys))

    def replace(self, lost):
        """An actor in place of `lost` (one link makes it; the others that lost it too get it)."""
        with self._lock:
            if self._actor is lost:
                self._actor = None
        return self.actor()

    def close(self) -> None:
        with self._lock:
            if self._actor is not None:
                ray.kill(self._actor)  # its process goes now, not when Ray collects the handle
                self._actor = None


class MuxerLink:
    """One video's muxer in the host's actor. The driver keeps every manifest it sends, so a
    muxer lost mid-collection (its process killed) is opened again, once, in a new actor and
    given them all again: the chunks are in storage."""

    def __init__(self, host: MuxerHost, total_frames, duration, audio, output, codec, on_restart=None):
        self.host, self.key = host, host.key()
        self.args = (total_frames, duration, audio, output, codec)
        self.actor = host.actor()
        self.sent, self.acks, self.restarts = [], [self.actor.open.remote(self.key, *self.args)], 0
        self._on_restart = on_restart

    def add(self, m: SegmentManifest) -> None:
        self.sent.append(m)
        self.acks.append(self.actor.add.remote(self.key, m))

    def finish(self) -> dict:
        try:
            while True:
                try:
                    return get([*self.acks, self.actor.finish.remote(self.key)])[-1]
                except ray.exceptions.RayActorError as e:
                    if self.restarts:
                        raise MuxError(f"the muxer was lost twice ({str(e).strip().splitlines()[0]})") from None
                    log.warning("the muxer was lost; starting it again with the %d chunks so far", len(self.sent))
                    self.restarts += 1
                    if self._on_restart is not None:
                        self._on_restart()
                    self.actor = self.host.replace(self.actor)
                    self.acks = [self.actor.open.remote(self.key, *self.args),
                                 *(self.actor.add.remote(self.key, m) for m in self.sent)]
        finally:  # published or failed, it is done with
            self.abandon()

    def abandon(self) -> None:
        self.actor.abandon.remote(self.key)  # the actor lives on for the engine's other videos
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
