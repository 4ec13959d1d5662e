"""The service on Ray Serve: one deployment, its FastAPI app built in the replica around the
replica's RenderService (whose engine keeps the detector loaded for the replica's life).

    python -m raypipe serve [overrides]      an embedded Ray, Serve's proxy at serve.host:serve.port
    serve deploy cluster/serve.yaml          on a running cluster (app_builder, its `overrides`)

One replica: the records and the engine are the replica's own, so more replicas would need a
shared store. SIGTERM or SIGINT stops Serve gracefully: the replica's renders are cancelled,
nothing partial is left, and they stay queued, taken up again when the service starts.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import ray
from omegaconf import DictConfig
from ray import serve

from raypipe.engine.ray_start import start_ray
from raypipe.serve.app import make_app
from raypipe.serve.service import RenderService

log = logging.getLogger("raypipe")
APP_NAME = "raypipe"
# The replica waits for renders to stop and their records to be written before it goes.
GRACEFUL_S = 60


@serve.deployment(name="raypipe", num_replicas=1, max_ongoing_requests=200, graceful_shutdown_timeout_s=GRACEFUL_S,
                  ray_actor_options={"num_cpus": 0})  # the renders' tasks ask for the CPUs
@serve.ingress()
class RaypipeService:
    def __init__(self, overrides: list[str]):
        self.service = RenderService(overrides)
        self.service.start()

    def __serve_build_asgi_app__(self):
        return make_app(self.service)

    def __del__(self):
        self.service.close("the service stopped")


def application(overrides: list[str], node_ip: str | None = None):
    """`node_ip`: the node the replica must run on (its serve.root is that machine's folder)."""
    if node_ip is None:
        return RaypipeService.bind(list(overrides))
    return RaypipeService.options(ray_actor_options={"num_cpus": 0, "resources": {f"node:{node_ip}": 0.001}}).bind(
        list(overrides))


def app_builder(args: dict):
    """Serve's config file's import path (cluster/serve.yaml): `args.overrides` are the service's."""
    overrides = args.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f"args.overrides: a list of strings, as on the command line (got {overrides!r})")
    return application(overrides)


class Stop:
    """SIGTERM or SIGINT, heard on the main thread while it waits."""

    def __init__(self):
        self.event = threading.Event()
        self.signum = 0

    def __call__(self, signum, frame=None) -> None:
        self.signum = signum
        self.event.set()


def serve_forever(cfg: DictConfig, overrides: list[str]) -> int:
    """Starts Ray (embedded, or ray.address's), Serve's proxy and the app; returns the signal
    that stopped it, once every render under way has been stopped."""
    root = os.path.abspath(os.path.expanduser(cfg.serve.root))  # the replica's cwd is Ray's
    overrides = [o for o in overrides if not o.startswith("serve.root=")] + [f"serve.root={root}"]
    start_ray(cfg.ray)
    # One proxy, on the head (the node `ray job submit` runs this on), not one per node: the API
    # is at serve.host:serve.port there; a worker node exposes nothing.
    serve.start(proxy_location="HeadOnly", http_options={"host": cfg.serve.host, "port": cfg.serve.port})
    stop = Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The replica stays on this node, where serve.root is, wherever the cluster has room.
    serve.run(application(overrides, ray.util.get_node_ip_address()), name=APP_NAME, route_prefix="/")
    print(f"raypipe serving on http://{cfg.serve.host}:{cfg.serve.port} (state in {root})", flush=True)
    while not stop.event.wait(1.0):
        pass
    log.info("stopping: %s", signal.Signals(stop.signum).name)
    serve.shutdown()
    return stop.signum
