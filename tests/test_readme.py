"""The README's examples, run as written, offline: its job file beside the files it names,
its Python snippet, and its commands (less the full renders of the shipped jobs, which
test_render.py makes, and those that need a cluster or the reader's own folder); and the
README and docs/ as pages: short enough to read, every link leading somewhere."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT
from raypipe import media
from raypipe.config import ASSETS
from raypipe.media import load_image

README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def section(title: str) -> str:
    return re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M).group(1)


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def commands() -> list[str]:
    lines = [line.split("  #")[0].strip() for title in ("See what it does", "Overrides")
             for block in blocks(section(title), "bash") for line in block.splitlines()]
    return [line for line in lines if line.startswith("python -m raypipe")]


def not_run(command: str) -> str | None:
    """Why a README command is left to other tests, or None."""
    if "ray.address=auto" in command:
        return "needs a running cluster (test_cluster.py)"
    if "~/my_jobs" in command:
        return "the reader's own folder"
    if re.fullmatch(r"python -m raypipe render \+job=demo( .*)?", command) and not re.search(r"--cfg|--help", command):
        return "a full demo render (test_render.py renders the demo)"
    return None


@pytest.fixture
def beside_the_job(tmp_path):
    """The folders the README's job names, with shipped media in them."""
    for folder in ("photos", "clips", "music"):
        (tmp_path / folder).mkdir()
    Image.fromarray(load_image("sample:astronaut")).save(tmp_path / "photos" / "beach.jpg")
    shutil.copy(ASSETS / "demo_clip.mp4", tmp_path / "clips" / "surf.mp4")
    shutil.copy(ASSETS / "demo_soundtrack.m4a", tmp_path / "music" / "song.m4a")
    return tmp_path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.render
def test_the_readmes_job_renders_as_written(beside_the_job):
    [job] = blocks(section("A job"), "yaml")
    (beside_the_job / "trip.yaml").write_text(job)
    [command] = re.findall(r"`(python -m raypipe render trip\.yaml)`", section("A job"))
    proc = run([sys.executable, *shlex.split(command)[1:]], beside_the_job)
    assert proc.returncode == 0, proc.stderr[-3000:]
    video = proc.stdout.strip().splitlines()[-1]
    info = media.probe(video)
    assert (info.width, info.height, info.fps) == (1280, 720, 30.0) and info.audio
    assert "DETECTOR FELL BACK TO SALIENCY" in proc.stdout + proc.stderr  # no weights here: said, not fatal


@pytest.mark.render
def test_the_readmes_python_snippet_runs(beside_the_job):
    [snippet] = blocks(README[:README.index("## Overrides")], "python")
    proc = run([sys.executable, "-c", snippet], beside_the_job)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.render
@pytest.mark.parametrize("command", [c for c in commands() if not not_run(c)])
def test_the_readmes_commands_run(command, tmp_path):
    proc = run([sys.executable, *shlex.split(command)[1:]], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if re.match(r"python -m raypipe (detect|preview) ", command):  # each prints what it made
        assert all(Path(p).is_file() for p in proc.stdout.strip().splitlines()[-1:])



def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def links(page: Path) -> list[str]:
    """The page's links and image sources outside its code blocks, the web's left out."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    found = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img src="([^"]+)"', text)
    return [link for link in found if not re.match(r"[a-z]+://", link)]


def broken(page: Path, link: str) -> str | None:
    """Why a link of the page leads nowhere, or None."""
    path, _, fragment = link.partition("#")
    target = (page.parent / path).resolve() if path else page
    if not target.exists():
        return f"{page.name}: {link}: no such file"
    headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M) if target.suffix == ".md" else []
    if fragment and fragment not in {anchor(h) for h in headings}:
        return f"{page.name}: {link}: no such heading in {target.name}"
    return None


@pytest.mark.unit
def test_the_readme_holds_what_a_user_needs_in_under_300_lines():
    assert len(README.splitlines()) < 300
    titles = re.findall(r"^## (.+)$", README, re.M)
    assert {"See what it does", "A job", "Many videos", "On a cluster", "Weights", "Troubleshooting"} <= set(titles)


@pytest.mark.unit
def test_every_link_of_the_readme_and_docs_leads_somewhere():
    assert all(links(page) for page in PAGES[:1])  # the README links to docs/: the check looks at something
    assert [why for page in PAGES for link in links(page) if (why := broken(page, link))] == []


@pytest.mark.unit
def test_the_readmes_layers_example_is_a_job_the_schema_takes():
    import yaml

    from raypipe.api import config

    [example] = blocks(section("A job"), "yml")
    cfg = config(yaml.safe_load(example))
    assert [layer.type for layer in cfg.job.layers] == ["text", "image", "image"]
    assert [v.name for v in cfg.render.variants] == ["wide", "tall"]
