"""The driver: validate and plan; detect once; put the detections once; one Ray task per
segment; a muxer actor joins the chunks with the soundtrack; write the run report."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from contextlib import ExitStack, contextmanager

import ray
from omegaconf import DictConfig, OmegaConf
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raypipe import RaypipeError, detect, timeline
from raypipe.detections import Detections
from raypipe.mux import Muxer
from raypipe.segment import render_segment
from raypipe.media import CODECS, MediaError, is_video, load_image
from raypipe.media.audio import check_audio
from raypipe.storage import Storage
from raypipe.timeline import JobError, Plan

log = logging.getLogger("raypipe")


class Stages:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 3)


def run_location(root: str | None, run_dir: str) -> str:
    """Where a run's files go: the Hydra run directory, or with `storage.root` set (storage
    every node can reach, s3://...), the same <job>/<time> path under that root."""
    if not root:
        return run_dir
    return root.rstrip("/") + "/" + "/".join(os.path.normpath(run_dir).split(os.sep)[-2:])


def prepare(cfg: DictConfig, run_root: str) -> tuple[Plan, str]:
    """Every check that needs no Ray: a bad job fails here, before any work or output."""
    detect.validate(cfg.detector)
    if cfg.ray.segment_strategy not in ("SPREAD", "DEFAULT"):
        raise JobError("ray.segment_strategy", f"must be SPREAD or DEFAULT (got {cfg.ray.segment_strategy!r})")
    plan = timeline.plan(cfg.job, cfg.render)
    for uri in plan.sources:
        index = next(s.index for s in plan.segments if s.shot.source == uri)
        try:
            if not is_video(uri):  # videos were probed by the planner
                load_image(uri)  # a full decode: a missing or corrupt image fails here, not in a task
        except MediaError as e:
            raise JobError(f"job.segments[{index}].source", str(e)) from None
    if plan.audio.path:
        try:
            check_audio(plan.audio.path)
        except MediaError as e:
            raise JobError("job.audio.path", str(e)) from None
    codec = CODECS[plan.encode.codec]
    output = cfg.job.output or f"{run_root}/{plan.name}{codec.containers[0]}"
    if not output.lower().endswith(codec.containers):
        raise JobError("job.output", f"{plan.encode.codec} goes in {', '.join(codec.containers)} files (got {output})")
    if "://" not in output:
        output = os.path.abspath(output)
    try:
        Storage(run_root).check_writable()
    except OSError as e:
        raise JobError("storage.root", f"cannot write to {run_root}: {str(e).splitlines()[0]}") from None
    return plan, output


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


@contextmanager
def ray_session(rc: DictConfig, stages: Stages):
    """An embedded local Ray by default (never a silent join of some running cluster)."""
    if ray.is_initialized():
        yield
        return
    with stages("ray_start"):
        if rc.address is None:
            ray.init(address="local", num_cpus=rc.num_cpus, object_store_memory=rc.object_store_memory,
                     include_dashboard=False, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
        else:
            _check_reachable(rc.address)
            try:
                ray.init(address=rc.address, log_to_driver=rc.log_to_driver, logging_level=_RAY_LOGS)
            except ConnectionError as e:
                raise JobError("ray.address", f"cannot reach a Ray cluster at {rc.address!r} ({e.args[0].split('.')[0]}); "
                               f"{_START_HINT}") from None
    try:
        yield
    finally:
        with stages("ray_stop"):
            ray.shutdown()


def render(cfg: DictConfig, run_dir: str) -> dict:
    stages = Stages()
    t0 = time.perf_counter()
    run_root = run_location(cfg.storage.root, run_dir)
    store = Storage(run_root)
    with ExitStack() as cleanup:
        with stages("validate"):
            plan, output = prepare(cfg, run_root)
        if cfg.storage.root:
            cleanup.callback(store.delete_dir, "inputs")
            with stages("stage_inputs"):
                plan = stage_inputs(plan, store)
        cleanup.enter_context(ray_session(cfg.ray, stages))
        cleanup.callback(store.delete_dir, "segments")  # chunks are never left as results
        # On the driver's own node (the head under `ray job submit`), which lives as long as
        # the render does: losing a worker node must not lose the chunks collected so far.
        # Strict, because a soft affinity let Ray place it on a worker node.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        muxer = ray.remote(num_cpus=0, scheduling_strategy=here)(Muxer).remote(
            store, len(plan.segments), plan.total_frames, plan.duration, plan.audio, output, plan.encode.codec)
        with stages("detect"):
            detections_ref, info, summary = detect_once(cfg.detector, plan)
        with stages("segments"):
            manifests = render_segments(plan, detections_ref, store, muxer, cfg.ray)
        # Which nodes hold the detections: one copy per node that ran segments, however many tasks it ran.
        held_by = ray.experimental.get_object_locations([detections_ref])[detections_ref]["node_ids"]
        with stages("mux"):
            result = _get(muxer.finish.remote())
    stages.seconds["total"] = round(time.perf_counter() - t0, 3)
    report = _report(plan, result, info, summary, manifests, stages)
    report["detections_held_by_nodes"] = sorted(held_by)
    report["run"] = run_root
    data = json.dumps(report, indent=2).encode()
    Storage(run_dir).write_bytes("report.json", data)
    if run_root != run_dir:  # the run's record goes where its video went
        store.write_bytes("report.json", data)
        hydra_dir = os.path.join(run_dir, ".hydra")
        for name in sorted(os.listdir(hydra_dir)) if os.path.isdir(hydra_dir) else ():
            store.put_file(os.path.join(hydra_dir, name), f".hydra/{name}")
    return report


def detect_once(detector: DictConfig, plan: Plan):
    """One detector actor, one pass over the distinct sources, one put of the results."""
    actor = ray.remote(detect.DetectorActor).options(num_cpus=detector.num_cpus, num_gpus=detector.num_gpus).remote()
    try:
        compacted, info = _get(actor.detect.remote(OmegaConf.to_object(detector), plan.sources, plan.prompts,
                                                   plan.video_ranges()))
    finally:
        ray.kill(actor)  # the model's memory goes back before the segments need it
    if info["fallback_reason"]:
        log.warning("DETECTOR FELL BACK TO SALIENCY: %s", info["fallback_reason"])
    detections = Detections.pack(detect.expand(compacted), smoothing=detector.track_smoothing)
    # The one put of this render: every segment task maps this object's pages, zero-copy.
    return ray.put(detections), info, detections.summary()


def stage_inputs(plan: Plan, store: Storage) -> Plan:
    """Local files a job names are copied into the run's storage once, so that nodes that do
    not share the driver's disk read them from there (URIs and samples are read as they are)."""
    moved = {}
    for uri in (*plan.sources, plan.audio.path):
        if uri and "://" not in uri and not uri.startswith("sample:"):
            digest = hashlib.sha1(uri.encode()).hexdigest()[:10]
            moved[uri] = store.put_file(uri, f"inputs/{digest}-{os.path.basename(uri)}")
    return plan.with_sources(moved)


def render_segments(plan: Plan, detections_ref, store: Storage, muxer, rc: DictConfig) -> list:
    """One task per segment; each manifest goes to the muxer as soon as its task is done."""
    # A task lost with its node is re-run elsewhere (retries are for system failures, not
    # for our own errors); its chunk's name is fixed, so a re-run overwrites it atomically.
    task = ray.remote(render_segment).options(num_cpus=rc.segment_cpus, scheduling_strategy=rc.segment_strategy,
                                              max_retries=3)
    # Longest first: with more segments than CPUs, a long one started last sets the finish time.
    by_length = sorted(plan.segments, key=lambda seg: -seg.frames)
    pending = [task.remote(seg, detections_ref, plan.encode, store) for seg in by_length]
    manifests, added = [], []
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for m in _get(done):
                log.info("segment %d: %d frames in %.1f s on node %s", m.index, m.frames, m.seconds, m.node_id[:8])
                manifests.append(m)
                added.append(muxer.add.remote(m))
        _get(added)
    except BaseException:
        # Stop the rest before the caller removes the chunks, so none is written after that:
        # politely first (a task unwinds and removes its temporary files), then by force.
        for ref in pending:
            ray.cancel(ref)
        _, stuck = ray.wait(pending, num_returns=len(pending), timeout=10)
        for ref in stuck:
            ray.cancel(ref, force=True)
        ray.wait(stuck, num_returns=len(stuck), timeout=30)
        raise
    return manifests


def _quietly(fn) -> None:
    try:
        fn()
    except Exception as e:  # cleanup must not hide the error that brought us here
        log.debug("cleanup step failed: %s", e)


def _get(refs):
    """ray.get that re-raises our own one-line errors from inside tasks and actors as they were."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, RaypipeError):
            raise e.cause from None
        raise


def _report(plan, result, info, summary, manifests, stages) -> dict:
    manifests = sorted(manifests, key=lambda m: m.index)
    enc = plan.encode
    return {
        "job": plan.name,
        "output": result["output"],
        "frames": result["frames"],
        "fps": float(enc.fps),
        "fps_exact": f"{enc.fps.numerator}/{enc.fps.denominator}",
        "width": enc.width,
        "height": enc.height,
        "duration_s": round(plan.duration, 6),
        "segments": len(plan.segments),
        "detector": info["detector"],
        "detector_fallback": info["fallback_reason"],
        "clip_loads": info["clip_loads"],
        "segment_workers": len({(m.node_id, m.pid) for m in manifests}),
        "segment_workers_with_torch": len({(m.node_id, m.pid) for m in manifests if m.torch_imported}),
        "masks_zero_copy": all(m.masks_in_shared_memory for m in manifests),
        "detections": summary,
        # Bytes each reader took from storage: sources are streamed, never fetched whole.
        "bytes_read": {"detector": info["bytes_read"], "segments": sum(m.bytes_read for m in manifests),
                       "mux": result["bytes_read"]},
        "stages": stages.seconds,
        "segment_runs": [
            {"index": m.index, "start": m.start, "frames": m.frames, "node_id": m.node_id, "node_ip": m.node_ip,
             "pid": m.pid,
             "seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "bytes_read": m.bytes_read}
            for m in manifests
        ],
    }
