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
from raypipe.api import selecting
from raypipe.errors import RaypipeError
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


def test_a_job_in_a_config_dir_needs_no_package_line(tmp_path, monkeypatch):
    job = write_trip(tmp_path / "conf")
    (tmp_path / "conf" / "job").mkdir()
    job.rename(tmp_path / "conf" / "job" / "trip.yaml")
    (tmp_path / "conf" / "photos").rename(tmp_path / "conf" / "job" / "photos")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    proc = run_cli("--config-dir", str(tmp_path / "conf"), "+job=trip", *SMALL, "--cfg", "job")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"source: {tmp_path / 'conf' / 'job' / 'photos' / 'cat.png'}" in proc.stdout
    # Found as the API finds a job (api.selecting): the CLI wrote the folder the API reuses.
    [written] = (tmp_path / "cache" / "raypipe-jobs").iterdir()
    assert selecting(tmp_path / "conf" / "job" / "trip.yaml") == [f"hydra.searchpath=[file://{written}]", "+job=_api"]
    assert list((tmp_path / "cache" / "raypipe-jobs").iterdir()) == [written]


def test_a_multirun_renders_each_job_of_the_sweep(tmp_path):
    """`-m` with a job file and a swept key: Hydra's launcher runs the command once per value."""
    job = write_trip(tmp_path / "mine")
    proc = run_cli("-m", str(job), "render.width=160", "render.height=90", "render.fps=6,12",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    videos = [tmp_path / "sweep" / str(n) / "trip.mp4" for n in (0, 1)]
    printed = [line for line in proc.stdout.splitlines() if not line.startswith("[")]  # Hydra logs to stdout too
    assert printed == [str(v) for v in videos]
    assert [media.count_frames(str(v)) for v in videos] == [6, 12]


def test_a_bug_before_the_config_is_composed_keeps_its_traceback(tmp_path, monkeypatch):
    """Not told as "the overrides could not be applied": only OmegaConf's and Hydra's own
    failures on an override are (tests/test_render.py, detector.image_size.0=448)."""
    import raypipe.__main__ as cli

    def planning_with_a_bug(*args):
        raise TypeError("a bug in raypipe")

    monkeypatch.setattr(cli, "folder_job", planning_with_a_bug)
    (tmp_path / "photos").mkdir()
    with pytest.raises(TypeError, match="a bug in raypipe"):
        cli.main(["render", str(tmp_path / "photos"), "render.width=160"])


def test_a_bug_on_the_composed_config_keeps_its_traceback(tmp_path):
    """raypipe's own code reading a key the schema lacks is not a typo of the user's, though
    OmegaConf names the key as it would name one."""
    script = ("import sys, raypipe.api as api\n"
              "api.render_config = lambda cfg, *args, **kwargs: cfg.render.widht\n"
              "sys.argv = ['raypipe', 'render', *sys.argv[1:]]\n"
              "import runpy\nrunpy.run_module('raypipe', run_name='__main__', alter_sys=True)\n")
    proc = subprocess.run([sys.executable, "-c", script, "+job=demo", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" in proc.stderr, proc.stderr[-2000:]
    assert "\nomegaconf.errors.ConfigAttributeError: Key 'widht'" in proc.stderr and "error: " not in proc.stderr


def test_our_flags_are_one_value_and_the_rest_goes_to_hydra():
    from raypipe.__main__ import Flags

    flags, rest = Flags.take(["--quiet", "+job=demo", "--at", "1.5", "--at=2", "--scale=0.5", "-m", "--dry-run"])
    assert flags == Flags(quiet=True, at=(1.5, 2.0), scale=0.5, dry_run=True) and rest == ["+job=demo", "-m"]
    with pytest.raises(RaypipeError, match=r"^--scale: expected a number of the size \(got 'big'\)$"):
        Flags.take(["--scale", "big"])


def test_the_raypipe_script_finds_the_configs():
    """pyproject's `raypipe` script imports raypipe.__main__ rather than running it as __main__:
    Hydra then took conf/ for a package of it ("Primary config module 'raypipe.conf' not found")."""
    proc = subprocess.run([sys.executable, "-c", "from raypipe.__main__ import main; main()", "render", "+job=demo",
                           "--cfg", "job"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("job:\n  name: demo\n")


def test_an_unknown_command_is_named_with_the_commands():
    proc = subprocess.run([sys.executable, "-m", "raypipe", "rendr", "+job=demo"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == ("error: unknown command 'rendr'; the commands are render, preview, detect, "
                                           "batch, bench, effects, layers, convert, serve, keys")


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


def test_an_output_in_a_folder_that_cannot_be_written_is_one_line_and_exit_2(tmp_path):
    """/sys: root may not make a folder there, though it may write to every folder it owns."""
    output = "/sys/raypipe-test/trip.mp4"
    proc = run_cli(str(write_trip(tmp_path / "mine")), *SMALL, f"job.output={output}",
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: job.output: cannot write") and "/sys" in line, line
    assert not os.path.exists("/sys/raypipe-test") and not list(tmp_path.rglob("*.mp4"))
