"""A real multi-node Ray cluster on this machine: a head and worker nodes as separate
processes, each worker with its own temp directory and its own object store; S3 storage
(moto on 127.0.0.1) that every node reaches; a standalone driver and a submitted job."""
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import boto3
import cv2
import numpy as np
import pytest
from ray.cluster_utils import Cluster

from conftest import (
    CREDENTIALS,
    ROOT,
    bucket_keys,
    free_port,
    frozen_while_titled,
    overrides,
    parent,
    read_report,
    run_cli,
    titled,
)
from raypipe import media
from raypipe.media import load_image
from raypipe.media.images import SAMPLES
from test_render import FIXTURE_FRAMES

# One xdist worker runs them all: their clusters and reference render (module fixtures) are made once.
pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("clusters")]

# Detect a lost node in ~2 s rather than the default ~30 s.
# Every render here splits the fixture the same way (13 tasks), whatever the cluster's size,
# so that their videos can be compared bit for bit: chunks start with a key frame.
SPLIT = "render.max_frames_per_task=12"
TASKS = 13
FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 4}


@contextmanager
def ray_cluster(workers: int, dashboard: bool = False):
    # Node temp dirs stay short: Ray's socket paths under them must fit in 107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="rpn-"))
    # The head has no CPUs: every segment and the detector run on the worker nodes.
    head = {"num_cpus": 0, "_system_config": FAST_FAILURE}
    if dashboard:
        # The agent that runs submitted jobs gets its own port: another Ray on this host
        # (the tests' embedded one) may hold the default.
        head.update(include_dashboard=True, dashboard_port=free_port(), dashboard_agent_listen_port=free_port())
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        nodes = [cluster.add_node(num_cpus=1, temp_dir=str(tmp / f"w{i}")) for i in range(workers)]
        cluster.wait_for_nodes()
        yield cluster, nodes
    finally:
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(s3):
    with ray_cluster(2, dashboard=True) as started:
        yield started


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A local file on the driver's disk: nodes must get it through storage, not this path."""
    path = tmp_path_factory.mktemp("photos") / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(load_image("sample:coffee"), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def single_node(photo, tmp_path_factory):
    """The same job rendered by an embedded one-node Ray with local storage."""
    run = tmp_path_factory.mktemp("single") / "fixture" / "run"
    proc = run_cli("--config-dir", "tests/conf", "+job=fixture", "detector=saliency", f"job.segments.3.source={photo}",
                   SPLIT, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return media.decode_all(read_report(run)["output"])


def fetch(client, key, path):
    path.write_bytes(client.get_object(Bucket="renders", Key=key)["Body"].read())
    return str(path)


def test_segments_spread_over_worker_nodes_and_the_video_equals_the_single_node_render(
        cluster, s3, photo, single_node, tmp_path):
    c, nodes = cluster
    env, client = s3
    run = tmp_path / "outputs" / "fixture" / "spread"
    proc = run_cli("--config-dir", "tests/conf", "+job=fixture", "detector=saliency", f"ray.address={c.address}",
                   "storage.root=s3://renders/cluster", f"job.segments.3.source={photo}", SPLIT, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = read_report(run)
    workers = {n.node_id for n in nodes}
    ran_on = {r["node_id"] for r in report["segment_runs"]}
    assert len(ran_on) == 2 and ran_on <= workers  # both worker nodes, never the CPU-less head
    assert report["masks_zero_copy"] and report["segment_workers_with_torch"] == 0
    # One copy of the detections per node (the driver's put on the head, one pull per worker
    # node), however many tasks each node ran: 3 copies for 13 tasks.
    assert len(report["detections_held_by_nodes"]) == 3 and len(report["segment_runs"]) == TASKS
    assert ran_on <= set(report["detections_held_by_nodes"])
    # Nodes read only storage: the driver's local photo was staged into it first.
    sources = [d["source"] for d in report["detections"]]
    assert all(s.startswith(("s3://renders/cluster/", "sample:")) for s in sources), sources
    assert not any(str(photo) == s for s in sources)
    key = "cluster/fixture/spread/fixture.mp4"
    assert report["output"] == f"s3://renders/{key}"
    stored = bucket_keys(client, "cluster/fixture/spread/")
    assert not [k for k in stored if "/segments/" in k or "/inputs/" in k]  # no chunks or staged inputs left
    frames = media.decode_all(fetch(client, key, tmp_path / "v.mp4"))
    assert len(frames) == FIXTURE_FRAMES and np.array_equal(frames, single_node)


def test_a_job_submitted_through_the_jobs_api_puts_its_run_in_storage(cluster, s3):
    from ray._private.utils import write_ray_address
    from ray.job_submission import JobStatus, JobSubmissionClient

    c, _ = cluster
    env, client = s3
    # The job supervisor resolves the driver's address as `ray.init("auto")` does: with
    # several clusters on one host (other tests' clusters), the most recently started one.
    # On a real head there is one; here, name ours as the latest again.
    write_ray_address(c.address)
    jobs = JobSubmissionClient(f"http://{c.webui_url}")
    deadline = time.time() + 120
    while True:  # the head's job agent may still be starting: Ray answers "try again later"
        try:
            job_id = jobs.submit_job(
                entrypoint=f"{sys.executable} -m raypipe render --config-dir tests/conf +job=fixture detector=saliency "
                           "ray.address=auto storage.root=s3://renders/jobs hydra.run.dir=outputs/fixture/submitted",
                runtime_env={"working_dir": str(ROOT), "excludes": ["outputs/", "multirun/", ".benchmarks/"]},
            )
            break
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.time() > deadline:
                raise
            time.sleep(2)
    deadline = time.time() + 300
    while (status := jobs.get_job_status(job_id)) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        assert time.time() < deadline, jobs.get_job_logs(job_id)[-3000:]
        time.sleep(1)
    logs = jobs.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    run = "jobs/fixture/submitted"
    assert logs.strip().splitlines()[-1] == f"s3://renders/{run}/fixture.mp4"
    stored = bucket_keys(client, run + "/")
    assert {f"{run}/fixture.mp4", f"{run}/report.json", f"{run}/.hydra/config.yaml"} <= set(stored)
    assert not (ROOT / "outputs" / "fixture" / "submitted").exists()  # nothing in the submitter's tree


def test_losing_a_worker_node_mid_render_still_gives_the_complete_video(s3, photo, single_node, tmp_path):
    with ray_cluster(3) as (c, nodes):
        storage = tmp_path / "storage"
        run = tmp_path / "outputs" / "fixture" / "lossy"
        chunks = storage / "cache" / "chunks"  # under storage.root, which every node reaches
        proc = subprocess.Popen(
            [sys.executable, "-m", "raypipe", "render", "--config-dir", "tests/conf", "+job=fixture",
             "detector=saliency", f"ray.address={c.address}", f"storage.root={storage}",
             f"job.segments.3.source={photo}", SPLIT, f"hydra.run.dir={run}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 240
        while not any(chunks.rglob("[0-9]*.mp4")):  # a chunk's name starts with its range
            assert proc.poll() is None and time.time() < deadline, "no segment finished"
            time.sleep(0.05)
        done_at_loss = len(list(chunks.rglob("[0-9]*.mp4")))
        # A node between two tasks would cost nothing: the one lost runs a task now.
        lost, worker = busy_node(nodes)
        c.remove_node(lost)  # its raylet, workers and object store die with it
        with suppress(ProcessLookupError):  # gone with its node
            os.kill(worker, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert done_at_loss < TASKS
    report = read_report(run)
    rest = [n.node_id for n in nodes if n is not lost]
    lost = lost.node_id
    # Whatever the lost node had not finished ran again on the nodes that were left: the
    # tasks' ranges still tile the timeline exactly.
    runs = sorted(report["segment_runs"], key=lambda r: r["start"])
    assert [r["start"] for r in runs] == [0, *np.cumsum([r["frames"] for r in runs])[:-1]] and len(runs) == TASKS
    assert {r["index"] for r in runs} == set(range(7))
    assert {r["node_id"] for r in report["segment_runs"]} - {lost} <= set(rest)
    # The lost node's tasks were run again, and the driver counted each re-run.
    assert report["retries"] and all(r["attempt"] >= 2 for r in report["retries"]), report["retries"]
    frames = media.decode_all(report["output"])
    assert len(frames) == FIXTURE_FRAMES and np.array_equal(frames, single_node)


def test_a_services_render_survives_a_worker_node_lost_mid_render(tmp_path):
    """`raypipe serve` on a cluster (its driver, proxy and replica on the head's side), a
    request rendering on three worker nodes: one of them, mid-task, is lost. The request still
    succeeds with every frame, as a CLI render does; the service goes on taking requests."""
    import httpx

    with ray_cluster(3) as (c, nodes):
        port, log = free_port(), open(tmp_path / "serve.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "raypipe", "serve", "detector=saliency", f"ray.address={c.address}",
             f"serve.port={port}", f"serve.root={tmp_path / 'serve'}", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        try:
            deadline = time.monotonic() + 240
            while not ready(api):
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.5)
            job = {"name": "lossy", "segments": [{"source": f"sample:{n}", "duration": 2.0}
                                                 for n in ("astronaut", "coffee", "chelsea", "rocket")]}
            sizes = ["render.width=160", "render.height=90", "render.fps=24", "render.max_frames_per_task=12"]
            rid = api.post("/v1/renders", json={"job": job, "overrides": sizes}).json()["id"]
            while (obj := api.get(f"/v1/renders/{rid}").json())["frames"]["done"] == 0:
                assert obj["ended_at"] is None and time.monotonic() < deadline, obj
                time.sleep(0.05)
            # A render node, not the replica's (losing that is losing the service, not a render).
            replica = next(parent(int(e)) for e in filter(str.isdigit, os.listdir("/proc"))
                           if titled(int(e), "ray::ServeReplica"))
            lost, worker = busy_node([n for n in nodes if n.all_processes["raylet"][0].process.pid != replica])
            done_at_loss = api.get(f"/v1/renders/{rid}").json()["frames"]["done"]
            c.remove_node(lost)
            with suppress(ProcessLookupError):  # gone with its node
                os.kill(worker, signal.SIGKILL)
            while (obj := api.get(f"/v1/renders/{rid}").json())["ended_at"] is None:
                assert time.monotonic() < deadline + 240, obj
                time.sleep(0.2)
            assert obj["status"] == "succeeded", obj
            assert done_at_loss < obj["frames"]["done"] == obj["frames"]["total"] == 192
            video = tmp_path / "got.mp4"
            video.write_bytes(api.get(f"/v1/renders/{rid}/video").content)
            assert media.count_frames(str(video)) == 192
            assert api.get("/readyz").status_code == 200
        finally:
            api.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def ready(api) -> bool:
    import httpx

    try:
        return api.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


# ---- across a network: each node in its own Linux network namespace ---------------------


class Netns:
    """A bridge in this namespace and, per node, a namespace joined to it by a veth pair,
    each with its own address: traffic between nodes crosses a real (virtual) network."""

    def __init__(self, names: list[str]):
        tag = f"{os.getpid() % 10000}"
        self.subnet = f"10.{77 + os.getpid() % 150}.0"
        self.bridge = f"rpb{tag}"
        self.spaces = {name: f"rp{tag}{name}" for name in names}
        self.ips = {name: f"{self.subnet}.{i + 1}" for i, name in enumerate(names)}
        self.host_ip = f"{self.subnet}.254"
        try:
            self._create()
        except BaseException:
            self.close()  # nothing half-made is left on the host
            raise

    def _create(self):
        self._run("ip", "link", "add", self.bridge, "type", "bridge")
        self._run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        self._run("ip", "link", "set", self.bridge, "up")
        for name, ns in self.spaces.items():
            self._run("ip", "netns", "add", ns)
            self._run("ip", "link", "add", f"v{ns}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._run("ip", "link", "set", f"v{ns}", "master", self.bridge, "up")
            self._run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.ips[name]}/24", "dev", "eth0")
            self._run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            self._run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    @staticmethod
    def _run(*cmd):
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    def popen(self, name: str, cmd: list[str], env: dict, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.spaces[name], *cmd], env={**os.environ, **env},
                                start_new_session=True, **kw)

    def close(self):
        cmds = [c for ns in self.spaces.values() for c in (["netns", "del", ns], ["link", "del", f"v{ns}"])]
        for cmd in cmds + [["link", "del", self.bridge]]:
            try:
                subprocess.run(["ip", *cmd], capture_output=True, timeout=30)
            except FileNotFoundError:
                return


def stop(proc: subprocess.Popen) -> None:
    """A `ray start --block` node and everything it started: they share its process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def networked_cluster():
    try:
        net = Netns(["head", "a", "b"])
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as e:
        # CI's machines can make namespaces (root, iproute2), so there this test must run.
        # A developer's laptop without CAP_NET_ADMIN still runs every other cluster test.
        if os.environ.get("CI"):
            pytest.fail(f"network namespaces are required under CI and could not be made: {e}")
        pytest.skip(f"network namespaces need root and iproute2 ({e})")
    from moto.server import ThreadedMotoServer

    nodes, tmp = [], Path(tempfile.mkdtemp(prefix="rpn-"))
    s3_port = free_port()
    s3_server = ThreadedMotoServer(ip_address=net.host_ip, port=s3_port, verbose=False)
    try:
        s3_server.start()
        endpoint = f"http://{net.host_ip}:{s3_port}"
        # The same S3 credentials on every node, as instances get them, and token
        # authentication on, with one token that every node and the driver read.
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "RAY_AUTH_MODE": "token"}
        subprocess.run([str(Path(sys.executable).with_name("ray")), "get-auth-token", "--generate"],
                       check=True, capture_output=True, timeout=60)
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                     region_name="us-east-1").create_bucket(Bucket="renders")
        ray_cli = str(Path(sys.executable).with_name("ray"))
        port = free_port()
        head = f"{net.ips['head']}:{port}"
        nodes.append(net.popen("head", [ray_cli, "start", "--head", "--block", f"--node-ip-address={net.ips['head']}",
                                        f"--port={port}", "--num-cpus=0", f"--temp-dir={tmp}/h",
                                        "--include-dashboard=false"], env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(net.ips["head"], port)
        for name in ("a", "b"):
            nodes.append(net.popen(name, [ray_cli, "start", "--block", f"--address={head}", "--num-cpus=1",
                                          f"--node-ip-address={net.ips[name]}", f"--temp-dir={tmp}/{name}"], env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield net, head, env, endpoint
    finally:
        for proc in reversed(nodes):
            stop(proc)
        s3_server.stop()
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_for_port(host: str, port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            assert time.time() < deadline, f"nothing listens on {host}:{port}"
            time.sleep(0.2)


def test_nodes_in_separate_network_namespaces_render_over_the_network(networked_cluster, photo, single_node, tmp_path):
    net, head, env, endpoint = networked_cluster
    run = tmp_path / "outputs" / "fixture" / "netns"
    # The driver runs in the head's namespace, as `ray job submit` would run it.
    deadline = time.time() + 240  # a Ray client connects in seconds, or in a minute on a loaded machine
    while time.time() < deadline:  # both worker nodes registered
        probe = net.popen("head", [sys.executable, "-c",
                                   f"import ray; ray.init(address='{head}', log_to_driver=False); "
                                  "print(sum(n['Alive'] and n['Resources'].get('CPU', 0) > 0 for n in ray.nodes()))"],
                          env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            if probe.communicate(timeout=max(1.0, deadline - time.time()))[0].strip() == "2":
                break
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.communicate()
        time.sleep(1)
    proc = net.popen("head", [sys.executable, "-m", "raypipe", "render", "--config-dir", "tests/conf", "+job=fixture",
                              "detector=saliency", f"ray.address={head}", "storage.root=s3://renders/netns",
                              f"job.segments.3.source={photo}", SPLIT, f"hydra.run.dir={run}"],
                     env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    report = read_report(run)
    # Segments ran on both worker namespaces, and the detections reached each over the veth network.
    assert {r["node_ip"] for r in report["segment_runs"]} == {net.ips["a"], net.ips["b"]}
    assert len(report["detections_held_by_nodes"]) == 3
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    frames = media.decode_all(fetch(client, "netns/fixture/netns/fixture.mp4", tmp_path / "v.mp4"))
    assert len(frames) == FIXTURE_FRAMES and np.array_equal(frames, single_node)
    # The cluster is closed to a client without the token.
    intruder = net.popen("head", [sys.executable, "-c", f"import ray; ray.init(address='{head}')"],
                         {**env, "RAY_AUTH_TOKEN": "not-the-token"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    _, err = intruder.communicate(timeout=120)
    assert intruder.returncode != 0 and "auth" in err.lower(), err[-2000:]


@pytest.mark.parametrize("lost_node", ["a renderer's", "the detector's"])
def test_a_batch_with_rows_and_videos_in_s3_survives_a_worker_node_lost_mid_batch(lost_node, s3, tiny_clip, tmp_path,
                                                                                  cache_dir):
    """Rows, CLIP's weights, videos and the cache in S3, a cluster of a CPU-less head and three
    workers; the batch detects in an actor on a worker node (CLIP's tiny checkpoint, fetched
    by the node: the driver never loads a model) and renders on the others. Once the first video is out, a worker node is
    removed, one mid-task or the detector's: every video is still published, the lost node's
    tasks ran again, and a lost detector was made again and loaded its model again."""
    env, client = s3
    log = tmp_path / "batch.err"
    detector_lost = lost_node == "the detector's"
    prefix = "batch-detector-lost" if detector_lost else "batch"  # the bucket outlives each test
    # Losing the detector costs something only while rows are still to be detected. Each row
    # shows a photo that no row before it did (a shared photo is detected once), and with
    # detector.batch_size=1 each row is detected on its own, after the one before is queued
    # to render: with one video in flight, the queues hold at most 3 rows detected ahead of
    # the one rendering, so when the first video is out the last rows are still to detect.
    n = 8 if detector_lost else 6
    photos = [[SAMPLES[i + k] if detector_lost else ("astronaut", "coffee", "chelsea")[k] for k in range(3)]
              for i in range(n)]
    rows = "id,address,price,photos\n" + "".join(
        f"h{i},{i} Elm St,${i},{'|'.join('sample:' + p for p in photos[i])}\n" for i in range(n))
    client.put_object(Bucket="renders", Key=f"{prefix}/rows.csv", Body=rows.encode())
    weights = {}
    for key in ("detector.pretrained", "detector.model_config"):
        name = Path(tiny_clip[key]).name
        client.put_object(Bucket="renders", Key=f"{prefix}/weights/{name}", Body=Path(tiny_clip[key]).read_bytes())
        weights[key] = f"s3://renders/{prefix}/weights/{name}"
    with ray_cluster(3) as (c, nodes):
        proc = subprocess.Popen(
            [sys.executable, "-m", "raypipe", "batch", "+job=listing", f"batch.rows=s3://renders/{prefix}/rows.csv",
             f"batch.root=s3://renders/{prefix}/out", f"storage.root=s3://renders/{prefix}/store",
             f"ray.address={c.address}",
             "detector=clip", "detector.fallback=null", "detector.model=tiny-clip", *overrides(weights),
             "render.width=160",
             "render.height=90", "render.fps=24", "batch.each.duration=2.0", "batch.each.after=[]",
             *(["batch.max_videos_in_flight=1", "detector.batch_size=1"] if detector_lost
               else ["batch.max_videos_in_flight=2"]), f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
        first, deadline = "", time.monotonic() + 240
        while not first.startswith("s3://") and time.monotonic() < deadline:  # Hydra's log lines share stdout
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            first = proc.stdout.readline() if ready else ""  # the first published video's URI
            if ready and not first:
                break  # it ended
        if not first.startswith(f"s3://renders/{prefix}/out/videos/"):
            proc.kill()
            pytest.fail(f"no video out (stdout: {first!r}): {log.read_text()[-3000:]}")
        lost, worker = busy_node(nodes, "ray::DetectorActor" if detector_lost else "ray::render_task")
        c.remove_node(lost)  # its raylet, its workers (mid-task) and its object store die with it
        with suppress(ProcessLookupError):  # gone with its node
            os.kill(worker, signal.SIGKILL)
        try:
            proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the batch did not end: {log.read_text()[-3000:]}")
    assert proc.returncode == 0, log.read_text()[-3000:]
    report = read_report(tmp_path / "run")
    assert (report["done"], report["failed"], report["executor"], report["detector_actors"]) == (n, 0, "ray", 1)
    assert sorted(bucket_keys(client, f"{prefix}/out/videos/")) == [f"{prefix}/out/videos/h{i}.mp4" for i in range(n)]
    manifest = client.get_object(Bucket="renders", Key=f"{prefix}/out/manifest.jsonl")["Body"].read().decode()
    assert sorted(line.split('"id": "')[1].split('"')[0] for line in manifest.splitlines()) == [f"h{i}" for i in range(n)]
    assert '"failed"' not in manifest
    for i in range(n):
        video = fetch(client, f"{prefix}/out/videos/h{i}.mp4", tmp_path / f"h{i}.mp4")
        assert media.count_frames(video) == 144  # three 2 s photos at 24 fps
    # The nodes (this machine's processes) keep one copy of the weights, in their cache.
    assert sorted(p.name for p in (cache_dir / "weights").rglob("*") if p.is_file() and p.name != ".lock") == [
        "open_clip_pytorch_model.bin", "tiny-clip.json"]
    if detector_lost:  # made again on a node that was left, which loaded its model again for the rows left
        assert report["detector_loads"] == 2
    else:  # the node was lost mid-task: its task ran again, elsewhere
        assert report["detector_loads"] == 1
        assert report["retries"] and all(r["attempt"] >= 2 for r in report["retries"]), report["retries"]


def busy_node(nodes, title: str = "ray::render_task", timeout: float = 60):
    """A worker node with a worker titled `title` now (a render task running, or an actor),
    and that worker, frozen mid-task (conftest.frozen_while_titled) so that the node is lost
    with the work in it: the caller removes the node, then kills the frozen worker (a stopped
    process cannot hear that its raylet died). The worker's parent is its node's raylet."""
    raylets = {n.all_processes["raylet"][0].process.pid: n for n in nodes}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in filter(str.isdigit, os.listdir("/proc")):
            pid = int(entry)
            if titled(pid, title) and parent(pid) in raylets and frozen_while_titled(pid, title):
                return raylets[parent(pid)], pid
        time.sleep(0.005)
    pytest.fail(f"no worker node has a {title}")
