"""Editly as a comparator of `bench compare --editly SPEC`: the same spec rendered by Editly's
own CLI (`xvfb-run -a node node_modules/editly/cli.js --json SPEC`) and by raypipe.

Editly reads files only, so the spec is first written out with its `sample:` photographs as
JPEG files and its paths absolute; both renderers then read the same files. The comparator
is skipped, with one line, where Editly is not installed (no node, or no cli.js at
$RAYPIPE_EDITLY_CLI, default ./node_modules/editly/cli.js).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import json5
from PIL import Image

from raypipe.media import load_image
from raypipe.plan.editly.spec import resolve

FILE_KEYS = ("path", "fontPath", "audioFilePath")


def command() -> list[str] | None:
    """How Editly's CLI runs here, or None where it is not installed."""
    cli = Path(os.environ.get("RAYPIPE_EDITLY_CLI", "node_modules/editly/cli.js"))
    if not cli.is_file() or shutil.which("node") is None:
        return None
    # Editly draws with headless GL, which needs an X display.
    display = ["xvfb-run", "-a"] if shutil.which("xvfb-run") and not os.environ.get("DISPLAY") else []
    return [*display, "node", str(cli.absolute())]


class Materialiser:
    """Writes a spec's sample: photographs as JPEGs into `folder`, once each."""

    def __init__(self, base: Path, folder: Path):
        self.base, self.folder = base, folder

    def file(self, value):
        if isinstance(value, str) and value.startswith("sample:"):
            path = self.folder / f"{value.partition(':')[2]}.jpg"
            if not path.exists():
                Image.fromarray(load_image(value)).save(path, quality=95)
            return str(path)
        return resolve(self.base, value)

    def walk(self, node):
        if isinstance(node, dict):
            return {k: self.file(v) if k in FILE_KEYS else self.walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v) for v in node]
        return node


def materialised(spec: Path, folder: Path) -> Path:
    """The spec as Editly can read it, in `folder` (its output beside it)."""
    data = Materialiser(spec.absolute().parent, folder).walk(json5.loads(spec.read_text()))
    data["outPath"] = str(folder / "editly.mp4")
    out = folder / spec.name
    out.write_text(json.dumps(data, indent=2))
    return out
