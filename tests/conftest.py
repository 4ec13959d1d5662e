import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

# Before anything imports huggingface_hub: an uncached tag then fails in 0.1 s, not 45 s.
os.environ["HF_HUB_OFFLINE"] = "1"

import imageio_ffmpeg  # noqa: E402
import pytest  # noqa: E402
import ray  # noqa: E402

from raypipe.api import compose  # noqa: E402
from raypipe.config import register  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The ffmpeg binary, to make test inputs and to check results independently of raypipe's own decoder.
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TEST_CONF = Path(__file__).resolve().parent / "conf"
register()


def compose_job(*overrides: str, job: str = "fixture"):
    """The config `python -m raypipe render --config-dir tests/conf +job=...` would get."""
    return compose([f"hydra.searchpath=[file://{TEST_CONF}]", f"+job={job}", *overrides])


def with_test_conf(*overrides: str) -> list[str]:
    """raypipe.api's overrides for a job of tests/conf/job/: the CLI's `--config-dir tests/conf`."""
    return [f"hydra.searchpath=[file://{TEST_CONF}]", *overrides]


def render(cfg, run_dir, **kwargs) -> dict:
    """A render through the engine's entry point (raypipe.engine.driver.render), its report as
    report.json has it."""
    from raypipe.engine.driver import render as engine

    return engine(cfg, str(run_dir), **kwargs).report.to_dict()


def run_cli(*args: str, cwd=ROOT, timeout=300, env=None, command="render") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raypipe", command, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def titled(pid: int, title: str) -> bool:
    """Whether process `pid`'s title starts with `title` (Ray titles a worker with what it runs
    now: `ray::render_task`, `ray::Muxer`, and `ray::IDLE` between tasks)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode())
    except OSError:
        return False


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def frozen_while_titled(pid: int, title: str) -> bool:
    """Stops `pid` (SIGSTOP) if it is still titled `title` once stopped, and says so; else lets
    it go on. A fault then struck at a frozen process lands in the middle of what it runs: a
    task that has just ended cannot slip out between the look and the fault."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    if titled(pid, title):
        return True
    os.kill(pid, signal.SIGCONT)
    return False


def render_error(caplog, job, overrides, run_dir) -> str:
    """The line the CLI prints as `error: LINE` (exiting 2) for this render, from raypipe.api in
    this process: the RaypipeError's message, checked to be one line. What the render logged,
    its progress (`segment N, frames ...`) included, is in `caplog.text`."""
    from raypipe.api import render as api_render
    from raypipe.errors import RaypipeError

    caplog.set_level(logging.INFO, logger="raypipe")
    with pytest.raises(RaypipeError) as e:
        api_render(job, overrides, run_dir=run_dir, quiet=False)
    assert "\n" not in str(e.value), str(e.value)
    return str(e.value)


def read_report(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "report.json").read_text())


TIERS = ("unit", "render", "cluster", "browser", "bench", "slow")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, and at least 2, as the tests wait half the time (measured:
    13.7 CPU-minutes in 11.6 minutes with 2 workers on 2 cores). PYTEST_XDIST_AUTO_NUM_WORKERS
    overrides it."""
    return int(os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or max(2, len(os.sched_getaffinity(0))))


# The order the parallel workers take the tests in: the longest kinds first, so that the last
# minutes are short tests on every worker, not one long test on one while the others wait.
ORDER = ("early", "cluster", "bench", "browser", "render", "slow", "unit")


def pytest_collection_modifyitems(items):
    """Each test in exactly one tier, so that `-m unit` and the others together are the suite;
    then the longest kinds first (ORDER), each kind in the files' order."""
    wrong = [f"{item.nodeid}: {tiers or 'none'}" for item in items
             if len(tiers := sorted({m.name for m in item.iter_markers() if m.name in TIERS})) != 1]
    if wrong:
        raise pytest.UsageError(f"each test needs exactly one of the marks {', '.join(TIERS)} "
                                f"(pyproject.toml's markers): " + "; ".join(wrong))
    items.sort(key=lambda item: min(ORDER.index(m.name) for m in item.iter_markers() if m.name in ORDER))


# What a tier's definition (pyproject.toml's markers) rules out, refused where it would happen, so
# that a test cannot sit in a faster tier than what it does: unit starts no Ray and no CLI process,
# slow no Ray and no CLI process that renders. (A render in this process on the driver's threads
# is not caught here.)
class TierOutOfBounds(Exception):
    """A test did what its tier's definition rules out: it belongs in another tier."""


def cli_command(args) -> str | None:
    """The COMMAND of `python -m raypipe COMMAND ...` ("" for none), None for any other process."""
    argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else str(args).split()
    at = next((i for i in range(1, len(argv)) if argv[i - 1:i + 1] == ["-m", "raypipe"]), None)
    return None if at is None else (argv[at + 1] if at + 1 < len(argv) else "")


class UnitPopen(subprocess.Popen):
    """subprocess.Popen for a test that must start no CLI process: refuses `python -m raypipe`."""

    def __init__(self, args, *rest, **kwargs):
        if cli_command(args) is not None:
            raise TierOutOfBounds(f"{' '.join(map(str, args))}: a unit test starts no CLI process")
        super().__init__(args, *rest, **kwargs)


class SlowPopen(subprocess.Popen):
    """subprocess.Popen for a test that must not render: refuses the CLI's rendering commands."""

    def __init__(self, args, *rest, **kwargs):
        if cli_command(args) in ("render", "batch", "preview"):
            raise TierOutOfBounds(f"{' '.join(map(str, args))}: a slow test renders nothing (the render tier does)")
        super().__init__(args, *rest, **kwargs)


class NoRay:
    """ray.init in a tier without Ray: refused."""

    def __init__(self, tier: str):
        self.tier = tier

    def __call__(self, *args, **kwargs):
        raise TierOutOfBounds(f"ray.init in a {self.tier} test: its tier starts no Ray")


BOUNDS = {"unit": UnitPopen, "slow": SlowPopen}


@pytest.fixture(autouse=True)
def tier_bounds(request, monkeypatch):
    tier = next((m.name for m in request.node.iter_markers() if m.name in TIERS), None)
    if tier in BOUNDS:
        monkeypatch.setattr(ray, "init", NoRay(tier))
        monkeypatch.setattr(subprocess, "Popen", BOUNDS[tier])


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch) -> Path:
    """A fresh cache for each test (renders inside a test share it; the user's is never touched)."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("RAYPIPE_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the in-process renders; address="local" so it never joins a running cluster."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


from raypipe.bench.detectors import TINY_CLIP  # noqa: E402  (the tiny architecture the benchmark measures too)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> dict:
    """A tiny open_clip architecture with random weights, saved as a real checkpoint file:
    the overrides that load it through the same path as real weights."""
    import open_clip
    import torch

    d = tmp_path_factory.mktemp("tiny_clip")
    config = d / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip")
    ckpt = d / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), ckpt)
    return {"detector.model": "tiny-clip", "detector.model_config": str(config), "detector.pretrained": str(ckpt)}


def overrides(mapping: dict) -> list[str]:
    return [f"{k}={v}" for k, v in mapping.items()]


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "raypipe-test", "AWS_SECRET_ACCESS_KEY": "raypipe-secret-not-logged",
               "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3():
    """A real S3 API (moto's server) on 127.0.0.1 with a bucket `renders`. Its endpoint and
    credentials are in this process's environment too, so Ray nodes that tests start later
    inherit them, as nodes of a real cluster get them from their instance's environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    client.create_bucket(Bucket="renders")
    yield env, client
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


def bucket_keys(client, prefix="") -> list[str]:
    listed = client.list_objects_v2(Bucket="renders", Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))
