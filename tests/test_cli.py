"""The command line as a newcomer meets it: a job file by its path, each command's own help,
an unknown command, and two renders given one output."""
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from conftest import ROOT, run_cli
from raypipe import media
from raypipe.media import load_image

pytestmark = pytest.mark.render

SMALL = ("render.width=160", "render.height=90", "render.fps=12")


def write_trip(folder, seconds: float = 1.0):
    """A job beside its photo, with neither the `job:` level nor the `# @package` line."""
    (folder / "photos").mkdir(parents=True)
    Image.fromarray(load_image("sample:chelsea")).save(folder / "photos" / "cat.png")
    job = folder / "trip.yaml"
    job.write_text(f"name: trip\nsegments:\n  - {{source: photos/cat.png, duration: {seconds}}}\n")
    return job


@pytest.mark.parametrize("form", ["path", "+job=path"])
def test_a_job_file_renders_by_its_path_with_sources_from_its_folder(tmp_path, form):
    job = write_trip(tmp_path / "mine")
    proc = run_cli(str(job) if form == "path" else f"+job={job}", *SMALL, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(tmp_path / "run" / "trip.mp4")  # run from the repository
    assert media.count_frames(str(tmp_path / "run" / "trip.mp4")) == 12
    assert "DETECTOR FELL BACK TO SALIENCY" in proc.stdout + proc.stderr  # no weights here: loud, not fatal


def test_a_job_in_a_config_dir_needs_no_package_line(tmp_path):
    job = write_trip(tmp_path / "conf")
    (tmp_path / "conf" / "job").mkdir()
    job.rename(tmp_path / "conf" / "job" / "trip.yaml")
    (tmp_path / "conf" / "photos").rename(tmp_path / "conf" / "job" / "photos")
    proc = run_cli("--config-dir", str(tmp_path / "conf"), "+job=trip", *SMALL, "--cfg", "job")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"source: {tmp_path / 'conf' / 'job' / 'photos' / 'cat.png'}" in proc.stdout


def test_an_unknown_command_is_named_with_the_commands():
    proc = subprocess.run([sys.executable, "-m", "raypipe", "rendr", "+job=demo"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == ("error: unknown command 'rendr'; the commands are render, preview, detect, "
                                           "batch, bench, effects, layers, convert")


@pytest.mark.parametrize("command,options", [("render", ["--quiet"]), ("preview", ["--scale", "--at", "--frames",
                                                                                  "--quiet"]),
                                             ("detect", ["--quiet"])])
def test_each_command_helps_with_its_own_options(command, options):
    proc = subprocess.run([sys.executable, "-m", "raypipe", command, "--help"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"raypipe {command}: ")
    assert [o for o in options if f"\n  {o} " not in proc.stdout] == []
    assert (command == "preview") == ("--frames" in proc.stdout)


def test_a_second_render_of_one_output_refuses_while_the_first_runs(tmp_path):
    """The first render is held still (SIGSTOP) once it holds the output's lock, so that the
    second surely starts while it runs; the first then finishes as if nothing happened."""
    job = write_trip(tmp_path / "mine", seconds=2.0)
    output = tmp_path / "out" / "trip.mp4"
    args = [sys.executable, "-m", "raypipe", "render", str(job), *SMALL, f"job.output={output}"]
    lock = tmp_path / "out" / ".trip.mp4.lock"
    first = subprocess.Popen([*args, f"hydra.run.dir={tmp_path / 'run1'}"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        while not (lock.exists() and lock.read_text()) and first.poll() is None:
            time.sleep(0.05)  # polling for the lock, no timing asserted
        os.kill(first.pid, signal.SIGSTOP)
        second = run_cli(str(job), *SMALL, f"job.output={output}", f"hydra.run.dir={tmp_path / 'run2'}")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == str(output) and media.count_frames(str(output)) == 24
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: job.output: {output} is being rendered by another render (pid {first.pid} on {os.uname().nodename}); "
        "wait for it to finish or set another job.output"]
    assert not lock.exists() and not (tmp_path / "run2" / "trip.mp4").exists()


def test_a_lock_left_by_a_killed_render_is_taken_over(tmp_path):
    job = write_trip(tmp_path / "mine")
    output = tmp_path / "out" / "trip.mp4"
    output.parent.mkdir()
    (output.parent / ".trip.mp4.lock").write_text("999999999 elsewhere\n")  # its process is gone: no flock held
    proc = run_cli(str(job), *SMALL, f"job.output={output}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert media.count_frames(str(output)) == 12 and not (output.parent / ".trip.mp4.lock").exists()
