"""`bench serve`: N listing videos sent at once to a warm service (`python -m raypipe serve`,
its detector loaded by one request before), against the same N jobs as N CLI renders and as
one batch, interleaved, with fresh caches, with both detectors (CLIP: a checkpoint of the
default architecture made here, as `bench batch` makes it). Per request: POST -> 202 and
POST -> succeeded; per run: the wall from the first POST to the last end, videos per hour,
detector loads."""
from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from raypipe.bench.batch import _batch, _checkpoint, _job, _photos, _separate
from raypipe.bench.compare import _become_subreaper
from raypipe.bench.registry import RUNS, arg, bench

READY_S = 300  # an embedded Ray and Serve's proxy start in 10 to 60 s on a loaded 2-core machine
WARM = {"name": "warm", "segments": [{"source": "sample:astronaut", "duration": 0.5}]}


def _call(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


class Service:
    """The service as a user runs it: its own process, on a free port, state in `root`."""

    def __init__(self, extra: list[str], root: Path, folder: Path, port: int, env: dict, n: int):
        self.base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "raypipe", "serve", *extra, f"serve.port={port}", f"serve.root={root}",
               f"serve.allowed_roots=[{folder}]", f"serve.max_queued_per_key={n + 1}", f"hydra.run.dir={root}/run"]
        self.log = open(root.parent / "serve.log", "w")  # closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        t0 = time.time()
        while not self._ready():
            if self.proc.poll() is not None or time.time() - t0 > READY_S:
                self.stop()
                sys.exit(f"error: the service did not start; see {root.parent / 'serve.log'}")
            time.sleep(0.5)

    def _ready(self) -> bool:
        try:
            return _call(f"{self.base}/readyz")["ready"]
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def render(self, body: dict) -> tuple[float, float, str]:
        """(the POST's start, its 202's seconds, the render's id)."""
        t0 = time.time()
        created = _call(f"{self.base}/v1/renders", body)
        return t0, time.time() - t0, created["id"]

    def ended(self, render_id: str) -> dict:
        while True:
            obj = _call(f"{self.base}/v1/renders/{render_id}")
            if obj["ended_at"] is not None:
                return obj
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=180)
        self.log.close()


class Requests:
    """N requests sent at once, a thread each: each POST's start, its 202's seconds, its id."""

    def __init__(self, service: Service, bodies: list[dict]):
        self.service, self.sent = service, [None] * len(bodies)
        threads = [threading.Thread(target=self._send, args=(i, b)) for i, b in enumerate(bodies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _send(self, i: int, body: dict) -> None:
        self.sent[i] = self.service.render(body)


class Probes:
    """A customer's request arriving while others render: one POST at a time, every PROBE_EVERY_S,
    while at least BUSY renders have not ended (PROBES at most), each cancelled once answered so
    that it adds no render. Each probe's 202 in ms, and the renders under way when it was sent."""

    def __init__(self, service: Service, body: dict, ids: list[str]):
        self.service, self.body, self.ids = service, body, set(ids)  # the renders it waits beside
        self.ms: list[float] = []
        self.busy: list[int] = []

    def run(self) -> Probes:
        while len(self.ms) < PROBES:
            listed = _call(f"{self.service.base}/v1/renders")["renders"]  # newest first: they are on page 1
            busy = sum(1 for r in listed if r["id"] in self.ids and r["ended_at"] is None)
            if busy < BUSY:
                break
            _, seconds, rid = self.service.render(self.body)
            _call(f"{self.service.base}/v1/renders/{rid}/cancel", {})
            self.ms.append(round(1000 * seconds, 1))
            self.busy.append(busy)
            time.sleep(PROBE_EVERY_S)
        return self


PROBES, BUSY, PROBE_EVERY_S = 20, 4, 0.3


def _served(folder: Path, photos, extra, env, run: Path, port: int) -> dict:
    """The first video's job alone on the warm service (what one customer waits for), then the
    others at once, and probes while they render."""
    service = Service(extra, run / "serve", folder, port, env, len(photos) + PROBES)
    try:
        if service.ended(service.render({"job": WARM})[2])["status"] != "succeeded":
            sys.exit("error: the warm-up render failed")
        bodies = [_job(f"v{v:03d}", names, folder) for v, names in enumerate(photos)]
        t0, _, alone_id = service.render(bodies[0])
        alone = service.ended(alone_id)
        sent = Requests(service, bodies[1:]).sent
        probes = Probes(service, _job("probe", photos[0], folder), [rid for _, _, rid in sent]).run()
        ends = [service.ended(rid) for _, _, rid in sent]
        failed = [e["error"] for e in [alone, *ends] if e["status"] != "succeeded"]
        if failed:
            sys.exit(f"error: {len(failed)} renders failed: {failed[0]}")
        loads = _call(f"{service.base}/v1/stats")["detector_loads"]
    finally:
        service.stop()
    wall = max(e["ended_at"] for e in ends) - min(t0 for t0, _, _ in sent)
    accepted = sorted(s for _, s, _ in sent)
    return {"wall_s": wall, "post_202_ms": [round(1000 * s, 1) for s in accepted],
            "busy_post_202_ms": probes.ms, "busy_renders": probes.busy,
            "post_to_succeeded_s": [round(e["ended_at"] - t0, 2) for (t0, _, _), e in zip(sent, ends)],
            "alone_s": round(alone["ended_at"] - t0, 2), "detector_loads": loads}


class Memory(threading.Thread):
    """The summed resident memory of the service's processes (its Ray's workers included),
    sampled every MEMORY_POLL_S; `take()` gives the highest sum since the last take."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(MEMORY_POLL_S):
            self.peak = max(self.peak, sum(_rss_kb(p) for p in _descendants(self.pid)))

    def take(self) -> float:
        peak, self.peak = self.peak, 0
        return round(peak / 1024, 1)


MEMORY_POLL_S = 0.25


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(b")") + 2:].split()[1]), []).append(int(entry.name))
    found, todo = [root], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(b"VmRSS:")), 0)
    except OSError:  # it exited meanwhile
        return 0


def _memory(folder: Path, photos, extra, env, run: Path, waves: int) -> dict:
    """`waves` waves of len(photos) requests, each wave sent at once and waited for, chunk cache
    off so that every request renders: the service's peak memory in each wave."""
    run.mkdir()
    service = Service([*extra, "render.cache=false"], run / "serve", folder, _port(), env, len(photos))
    memory = Memory(service.proc.pid)
    try:
        service.ended(service.render({"job": WARM})[2])
        memory.take()
        bodies = [_job(f"v{v:03d}", names, folder) for v, names in enumerate(photos)]
        peaks = []
        for w in range(waves):
            ends = [service.ended(rid) for _, _, rid in Requests(service, bodies).sent]
            failed = [e["error"] for e in ends if e["status"] != "succeeded"]
            if failed:
                sys.exit(f"error: {len(failed)} renders of wave {w} failed: {failed[0]}")
            peaks.append(memory.take())
            print(f"memory: {len(photos) * (w + 1)} requests, peak {peaks[-1]} MB", file=sys.stderr)
        loads = _call(f"{service.base}/v1/stats")["detector_loads"]
    finally:
        memory.done.set()
        service.stop()
    return {"requests": waves * len(photos), "peak_rss_mb_by_wave": peaks, "detector_loads": loads,
            "last_over_first": round(peaks[-1] / peaks[0], 3)}


@bench("serve", arg("--requests", type=int, default=8), RUNS,
       arg("--detectors", nargs="+", choices=("saliency", "clip"), default=["saliency", "clip"],
           help="the no-weights detector, and CLIP with a checkpoint of the default architecture"),
       arg("--width", type=int, default=1280), arg("--height", type=int, default=720), arg("--fps", default="30"),
       arg("--max-separate", type=int, default=None, metavar="K",
           help="the separate CLI renders: of the first K videos only (default: all N)"),
       arg("--memory", type=int, default=0, metavar="WAVES",
           help="instead: WAVES waves of N requests to one service, its peak memory in each"),
       help="N requests to a warm service against N CLI renders and one batch, both detectors")
def bench_serve(args) -> dict:
    _become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="raypipe-bench-serve-"))
    try:
        return _bench(args, work)
    finally:  # photos, checkpoint, videos, the services' state: nothing of a run is kept
        shutil.rmtree(work, ignore_errors=True)


def _bench(args, work: Path) -> dict:
    folder = work / "photos"
    folder.mkdir()
    # the serve run's first video goes alone, then the others at once; the CLI and the batch make those others
    photos = _photos(folder, args.requests + (0 if args.memory else 1))
    detectors = {"saliency": ["detector=saliency"]} if "saliency" in args.detectors else {}
    if "clip" in args.detectors:
        detectors["clip"] = _checkpoint(work)
    size = [f"render.width={args.width}", f"render.height={args.height}", f"render.fps={args.fps}"]
    if args.memory:
        env = {**os.environ, "RAYPIPE_CACHE_DIR": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
        det = args.detectors[-1]
        return {"detector": det, "size": f"{args.width}x{args.height}@{args.fps}", "cpus": os.cpu_count(),
                **_memory(folder, photos, [*detectors[det], *size], env, work / "memory", args.memory)}
    result = {"requests": args.requests, "runs": args.runs, "cpus": os.cpu_count(),
              "size": f"{args.width}x{args.height}@{args.fps}", "detectors": {}}
    variants = ("serve", "separate", "batch")
    for det, extra in detectors.items():
        runs = {v: [] for v in variants}
        for r in range(args.runs):
            for variant in variants[r % 3:] + variants[:r % 3]:  # interleaved: each goes first once in 3
                run = work / f"{det}-{variant}-{r}"
                run.mkdir()
                env = {**os.environ, "RAYPIPE_CACHE_DIR": str(run / "cache"), "HF_HUB_OFFLINE": "1"}
                if variant == "serve":
                    runs[variant].append(_served(folder, photos, [*extra, *size], env, run, _port()))
                elif variant == "separate":
                    runs[variant].append(_separate(folder, photos[1:][:args.max_separate], [*extra, *size], env, run))
                else:
                    runs[variant].append(_batch(folder, photos[1:], [*extra, *size], env, run))
                print(f"{det} {variant} run {r}: {runs[variant][-1]['wall_s']:.1f} s", file=sys.stderr)
        result["detectors"][det] = _summary(runs, args.requests)
    return result


def _summary(runs: dict, n: int) -> dict:
    served = runs["serve"]
    latencies = sorted(ms for r in served for ms in r["post_202_ms"])
    busy = sorted(ms for r in served for ms in r["busy_post_202_ms"])
    to_end = sorted(s for r in served for s in r["post_to_succeeded_s"])
    wall = {v: statistics.median(r["wall_s"] for r in rs) for v, rs in runs.items()}
    made = {"serve": n, "batch": n, "separate": len(runs["separate"][0]["walls_s"])}  # --max-separate
    return {"post_202_ms": {"p50": _pct(latencies, 50), "p99": _pct(latencies, 99)},
            # the target's measure: one POST at a time while at least BUSY renders are under way
            "busy_post_202_ms": {"p50": _pct(busy, 50), "p99": _pct(busy, 99), "probes": len(busy),
                                 "renders_under_way": [min(b for r in served for b in r["busy_renders"]),
                                                       max(b for r in served for b in r["busy_renders"])]},
            "post_to_succeeded_s": {"p50": _pct(to_end, 50), "max": to_end[-1]},
            "wall_s": {v: round(w, 2) for v, w in wall.items()},
            "videos_per_hour": {v: round(3600 * made[v] / w, 1) for v, w in wall.items()},
            "detector_loads": {v: max(r["detector_loads"] for r in rs) for v, rs in runs.items()},
            "alone_s": statistics.median(r["alone_s"] for r in served),
            "cli_render_s": statistics.median(w for r in runs["separate"] for w in r["walls_s"]),
            # the targets: the service within 1.15x of the batch, and one request on the warm
            # service against the same job as one CLI render
            "serve_over_batch": round(wall["serve"] / wall["batch"], 2),
            "cli_render_over_request": round(statistics.median(w for r in runs["separate"] for w in r["walls_s"])
                                             / statistics.median(r["alone_s"] for r in served), 2)}


def _pct(values: list[float], p: int) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
