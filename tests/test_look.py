"""Seeing what a render does: the commands, live progress, and report.html in a real browser."""
import fcntl
import io
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, compose_job, read_report, run_cli, with_test_conf
from raypipe import api, media
from raypipe.engine import progress
from raypipe.engine.cache import Reuse
from raypipe.engine.driver import detect
from raypipe.engine.task import render_task
from raypipe.errors import RaypipeError
from raypipe.look.sheet import BOX
from raypipe.plan.cost import ordered_tasks
from raypipe.plan.validate import prepare
from raypipe.storage import Storage
from test_render import FIXTURE_FRAMES, psnr

FIXTURE = ("--config-dir", "tests/conf", "+job=fixture", "detector=saliency")
SALIENCY = with_test_conf("detector=saliency")  # FIXTURE, for raypipe.api in this process
# Screenshots and sheets the tests make, for a person to look at (and for the README's).
ARTEFACTS = ROOT / "tests" / "artefacts"


def keep(path: Path, name: str) -> None:
    ARTEFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTEFACTS / name)


def raypipe(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raypipe", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.render
def test_help_lists_every_command_on_one_line_each():
    done = raypipe("--help")
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert listed == {"render", "preview", "detect", "batch", "bench", "effects", "layers", "convert", "serve", "keys"}


@pytest.mark.render
def test_detect_draws_every_source_with_its_box_and_reuses_the_cache(tmp_path, cache_dir):
    sheet = Path(api.detect("fixture", SALIENCY, run_dir=tmp_path / "run").sheet)
    assert sheet == tmp_path / "run" / "detections.png"
    image = cv2.cvtColor(cv2.imread(str(sheet)), cv2.COLOR_BGR2RGB)
    # 4 stills and the clip's keyframes over its 0.9 s, each drawn with its box.
    assert image.shape[1] == 8 + 4 * (320 + 8) and image.shape[0] > 2 * 180
    assert (np.abs(image.astype(int) - BOX).max(axis=2) < 8).sum() > 5 * 4 * 100
    assert len(list(cache_dir.rglob("*.parquet"))) == 5
    keep(sheet, "detections.png")
    again = api.detect("fixture", SALIENCY, run_dir=tmp_path / "again")
    assert cv2.imread(again.sheet).shape == image.shape


@pytest.mark.render
def test_preview_renders_the_timeline_small_into_its_own_file(tmp_path):
    output = tmp_path / "final.mp4"
    video = Path(api.preview("fixture", [*SALIENCY, f"job.output={output}"], run_dir=tmp_path / "run").video)
    assert video == tmp_path / "run" / "fixture-preview.mp4" and not output.exists()
    info = media.probe(str(video))
    assert (info.width, info.height) == (80, 44) and media.count_frames(str(video)) == FIXTURE_FRAMES


@pytest.mark.render
def test_preview_frames_are_the_frames_the_render_makes(tmp_path):
    frames = raypipe("preview", *FIXTURE, "--at", "1.0", "--at=2.5", f"hydra.run.dir={tmp_path / 'frames'}")
    assert frames.returncode == 0, frames.stderr[-2000:]
    paths = frames.stdout.strip().splitlines()
    assert [Path(p).name for p in paths] == ["frame-000024.png", "frame-000060.png"]
    api.render("fixture", SALIENCY, run_dir=tmp_path / "full")
    video = media.decode_all(read_report(tmp_path / "full")["output"])
    for path, k in zip(paths, (24, 60)):
        still = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        best = max(range(len(video)), key=lambda j: psnr(still, video[j]))
        assert psnr(still, video[k]) > 30 and abs(best - k) <= 1, (k, best)
    storyboard = api.preview("fixture", SALIENCY, run_dir=tmp_path / "board", frames=True)
    assert len(storyboard) == 7 * 3
    with pytest.raises(RaypipeError) as bad:  # the CLI's exit 2, its `error: ` line the message
        api.preview("fixture", SALIENCY, run_dir=tmp_path / "bad", at=[99.0])
    assert str(bad.value) == "--at: 99.0 s is outside the video (0 to 5.417 s)"


@pytest.mark.render
def test_quiet_prints_the_path_and_nothing_else(tmp_path):
    done = run_cli(*FIXTURE, "--quiet", "render.width=160", "render.height=90", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == [str(tmp_path / "run" / "fixture.mp4")]


@pytest.mark.render
def test_a_terminal_shows_a_live_bar_fed_by_the_tasks(tmp_path):
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "raypipe", "render", *FIXTURE, "ray.min_saving_s=0",
                             "render.max_frames_per_task=6", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=ROOT, stdin=child, stdout=child, stderr=child)
    os.close(child)
    seen, deadline = b"", time.monotonic() + 240
    while time.monotonic() < deadline:
        if select.select([parent], [], [], 0.5)[0]:
            try:
                chunk = os.read(parent, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait()
    os.close(parent)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    assert "render: 100%" in text and f"{FIXTURE_FRAMES}/{FIXTURE_FRAMES}" in text and "frame/s" in text
    tasks = read_report(tmp_path / "run")["tasks"]
    assert f"tasks {tasks}/{tasks}" in text and "progress:" not in text  # a bar, not the plain lines
    assert str(tmp_path / "run" / "fixture.mp4") in [line.strip() for line in text.splitlines()]


@pytest.mark.unit
def test_off_a_terminal_a_plain_line_every_few_seconds(monkeypatch):
    monkeypatch.setattr(progress, "LINE_S", 0.0)
    out = io.StringIO()
    shown = progress.Progress(total_frames=200, tasks=4, reused_frames=50, reused_tasks=1, stream=out)
    shown.update(70, 2)
    shown.task_done("segment 1 done")
    shown.update(150, 1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("progress: 120/200 frames (60%), ") and "tasks 1/4, nodes busy 2" in lines[0]
    assert lines[1].startswith("progress: 200/200 frames (100%), ") and "tasks 2/4, nodes busy 1" in lines[1]
    quiet = io.StringIO()
    progress.Progress(total_frames=200, tasks=4, quiet=True, stream=quiet).update(100, 1)
    assert quiet.getvalue() == ""


@pytest.mark.render
def test_a_task_reports_its_frames_as_it_renders(tmp_path):
    cfg = compose_job("detector=saliency")
    plan, _ = prepare(cfg, str(tmp_path))
    detections, _ = detect(cfg.detector, plan, Reuse.look_up(cfg, plan, Storage(str(tmp_path))).detections)
    task = ordered_tasks(plan, plan.total_frames)[0]
    seen = []
    render_task(task, detections, plan.encode, Storage(str(tmp_path)), "chunk.mp4", report=seen.append)
    assert seen == list(range(1, task.frames + 1))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def test_report_html_loads_in_a_real_browser_with_every_image(tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI has no chromium: .ci/run installs it from Debian's packages")
        pytest.skip("no chromium here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    api.render("fixture", [*SALIENCY, "ray.min_saving_s=0", "render.width=640", "render.height=360"],
               run_dir=tmp_path / "run")
    page_path = tmp_path / "run" / "report.html"
    report = read_report(tmp_path / "run")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1100, "height": 900})
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(page_path.as_uri(), wait_until="load")
        widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        bars = page.evaluate("document.querySelectorAll('svg.timeline rect').length")
        text = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        chromium.close()
    assert problems == []
    # The detection sheet, then each of the 7 segments' first, middle and last frame.
    assert len(widths) == 1 + 7 * 3 and min(widths) > 0 and widths[0] > 1000
    assert bars == len([r for r in report["segment_runs"] if not r["reused"]]) > 7
    assert "fixture" in text and "Stages" in text and "segments" in text and "job:" in text
    keep(tmp_path / "report.png", "report.png")


@pytest.mark.unit
def test_the_task_timeline_gives_tasks_that_ran_side_by_side_in_one_process_their_own_lanes():
    import re

    from raypipe.look.report_html import task_timeline

    def run(index, started, seconds, pid=7):
        return {"index": index, "start": index * 10, "frames": 10, "started": started, "seconds": seconds,
                "node_id": "", "pid": pid, "reused": False}

    # The driver's two threads: 0 and 1 overlap, 2 follows 0 on its thread; another process beside.
    svg = task_timeline([run(0, 100.0, 2.0), run(1, 100.1, 3.0), run(2, 102.0, 1.0), run(3, 100.0, 1.0, pid=9)])
    lanes = re.findall(r'class="lane">node ([^<]*)<', svg)
    assert lanes == ["driver · pid 7 · 1", "driver · pid 7 · 2", "driver · pid 9"] and svg.count("<rect") == 4
