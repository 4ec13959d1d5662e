"""A built wheel renders on its own: its configs ship inside the package, so an install
that is not this checkout (a Docker image, a cluster node) can run `+job=demo`."""
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT
from raypipe import media

pytestmark = pytest.mark.render  # it renders: the demo from a wheel


def test_a_wheel_installed_outside_the_checkout_renders_the_demo(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("raypipe-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "raypipe/conf/config.yaml" in names and "raypipe/conf/job/demo.yaml" in names
    assert "raypipe/assets/demo_clip.mp4" in names
    # The dependencies come from this environment; raypipe itself only from the wheel (not from a
    # checkout on PYTHONPATH, as a worktree's tests run with).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True,
                   env=env)
    where = subprocess.run([python, "-c", "import raypipe; print(raypipe.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, env=env).stdout.strip()
    assert where.startswith(str(venv))
    proc = subprocess.run([python, "-m", "raypipe", "render", "+job=demo", "render.width=320", "render.height=180",
                           "detector=saliency", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    video = proc.stdout.strip().splitlines()[-1]
    assert video == str(tmp_path / "run" / "demo.mp4") and media.count_frames(video) == 588
