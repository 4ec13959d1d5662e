"""Reading source images: local paths, URIs that pyarrow.fs resolves, and `sample:NAME`.

`sample:NAME` is one of the photographs that ship inside scikit-image, so demos and tests
need nothing downloaded.
"""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from raypipe import RaypipeError
from raypipe.storage import open_input

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "cat", "camera", "hubble_deep_field",
           "immunohistochemistry", "retina", "colorwheel")


class SourceError(RaypipeError, ValueError):
    pass


def _read_bytes(uri: str) -> bytes:
    try:
        with open_input(uri) as f:
            return f.read()
    except FileNotFoundError:
        raise SourceError(f"no such file: {uri}") from None
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read {uri}: {e}") from None


def load_image(uri: str) -> np.ndarray:
    """RGB uint8, C-contiguous, EXIF orientation applied."""
    if uri.startswith("sample:"):
        name = uri.split(":", 1)[1]
        if name not in SAMPLES:
            raise SourceError(f"unknown sample {name!r} (known: {', '.join(SAMPLES)})")
        import skimage.data

        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        return np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
    data = _read_bytes(uri)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise SourceError(f"cannot decode image {uri}: {e}") from None


def normalize(uri: str) -> str:
    """Absolute local paths, so that every worker, whatever its cwd, reads the same file."""
    if uri.startswith("sample:") or "://" in uri:
        return uri
    return os.path.abspath(os.path.expanduser(uri))

