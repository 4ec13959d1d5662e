"""The cache's code hash follows the layout: it covers every module a task imports, found
from the import graph, and a module moved (or renamed) changes it as an edit does."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from raypipe import code

pytestmark = pytest.mark.unit

VERSION = ("from raypipe.engine.cache import RENDER_CODE; from raypipe.detection.cache import DETECT_CODE, "
           "code_version; print(code_version(RENDER_CODE), code_version(DETECT_CODE))")


def versions(tree) -> list[str]:
    out = subprocess.run([sys.executable, "-c", VERSION], cwd=tree, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    return out.stdout.split()


def test_the_hash_covers_every_module_a_task_imports():
    script = ("import sys, json, raypipe.engine.task; "
              "print(json.dumps(sorted(m for m in sys.modules if m.startswith('raypipe'))))")
    imported = json.loads(subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                                         check=True).stdout)
    assert set(imported) <= set(code.closure(("raypipe.engine.task",)))


def test_a_moved_module_changes_the_hash_and_a_copied_tree_does_not(tmp_path):
    same, moved = tmp_path / "same", tmp_path / "moved"
    for tree in (same, moved):
        shutil.copytree(ROOT / "raypipe", tree / "raypipe", ignore=shutil.ignore_patterns("__pycache__"))
    (moved / "raypipe" / "media" / "hdr.py").rename(moved / "raypipe" / "media" / "tone.py")
    video = moved / "raypipe" / "media" / "video.py"
    video.write_text(video.read_text().replace("raypipe.media.hdr", "raypipe.media.tone"))
    here, there = versions(same), versions(moved)
    assert here == versions(ROOT)  # the place on disk is not part of the code
    assert here[0] != there[0] and here[1] != there[1]  # the renderer and the detector both read video.py
