import json
import os
import subprocess
import sys
from pathlib import Path

# Before anything imports huggingface_hub: an uncached tag then fails in 0.1 s, not 45 s.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import ray  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from raypipe.config import register  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEST_CONF = Path(__file__).resolve().parent / "conf"
register()


def compose_job(*overrides: str, job: str = "fixture"):
    """The config `python -m raypipe render --config-dir tests/conf +job=...` would get."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"hydra.searchpath=[file://{TEST_CONF}]", f"+job={job}", *overrides])


def run_cli(*args: str, cwd=ROOT, timeout=300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raypipe", "render", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def read_report(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "report.json").read_text())


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the in-process renders; address="local" so it never joins a running cluster."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


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
