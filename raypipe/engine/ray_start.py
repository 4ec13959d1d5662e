"""Ray's start, once per process: an embedded local Ray by default, never a silent join of
some running cluster; a cluster with `ray.address`. And the calls every Ray-side module makes:
`get`, which gives our own errors back as they were raised, and `here`, the driver's node."""
from __future__ import annotations

import logging
import signal
import socket
import threading

import ray
from omegaconf import DictConfig
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raypipe.errors import JobError, RaypipeError

# Ray's start-up notices would stand between a failed render and its one-line error.
_RAY_LOGS = logging.ERROR
_START_HINT = "start one with `ray start --head`, or leave ray.address unset for an embedded Ray"


def _check_reachable(address: str) -> None:
    """Ray waits minutes on a GCS address that does not answer; a TCP connect says so in seconds."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise JobError("ray.address", f"cannot reach a Ray cluster at {address!r} ({e}); {_START_HINT}") from None


def get(refs):
    """ray.get that re-raises our own one-line errors from inside tasks and actors as they were."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, RaypipeError):
            raise e.cause from None
        raise


def start_ray(rc: DictConfig) -> None:
    # Ray puts in its own SIGTERM handler (an immediate exit); the caller's, which unwinds the
    # render and removes its partial files, is put back.
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    if rc.address is None:
        ray.init(address="local", num_cpus=rc.num_cpus, object_store_memory=rc.object_store_memory,
                 include_dashboard=False, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
    else:
        _check_reachable(rc.address)
        try:
            ray.init(address=rc.address, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
        except ConnectionError as e:
            raise JobError("ray.address", f"cannot reach a Ray cluster at {rc.address!r} "
                                          f"({e.args[0].split('.')[0]}); {_START_HINT}") from None
    if callable(handler):
        signal.signal(signal.SIGTERM, handler)


def embedded(rc: DictConfig) -> bool:
    """Whether a render with this ray section would start a Ray of its own on this machine."""
    return rc.address is None and not ray.is_initialized()


def here() -> NodeAffinitySchedulingStrategy:
    """The driver's own node, strictly (a soft affinity let Ray place actors on a worker node)."""
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


