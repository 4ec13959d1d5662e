"""Still images to upright 8-bit sRGB, whatever the file holds.

- Orientation: the EXIF Orientation tag is applied (phones store pixels as the sensor
  read them and say how to turn them).
- Depth: 16-bit and 32-bit greyscale are scaled to 8 bits, never clipped.
- Colour: palette images are expanded; CMYK is converted as Pillow reads it (Adobe's
  inverted CMYK JPEGs included); an embedded ICC profile is converted to sRGB with
  relative colorimetric intent, as browsers do.
- Alpha: composited over black, the colour a video frame has where nothing is drawn; or, for
  an image drawn over frames (a layer: `load_rgba`), kept.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from raypipe.media import cards
from raypipe.media.streams import MediaError, ReadCounter, generated, open_source

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "cat", "camera", "hubble_deep_field",
           "immunohistochemistry", "retina", "colorwheel")
_SRGB = ImageCms.createProfile("sRGB")
_DEEP = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def _sample(name: str) -> np.ndarray:
    if name not in SAMPLES:
        raise MediaError(f"unknown sample {name!r} (known: {', '.join(SAMPLES)})")
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)


def _eight_bit(im: Image.Image) -> Image.Image:
    """Deep greyscale scaled to 0..255 (Pillow's own convert clips it: a ramp turns white)."""
    full = _DEEP[im.mode]
    a = np.asarray(im, dtype=np.float64)
    return Image.fromarray(np.round(np.clip(a / full, 0.0, 1.0) * 255.0).astype(np.uint8))


def _to_srgb(im: Image.Image, icc: bytes | None, uri: str) -> Image.Image:
    if icc and im.mode in ("RGB", "L", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, _SRGB, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                             outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError) as e:
            raise MediaError(f"cannot apply the ICC profile embedded in {uri}: {e}") from None
    return im.convert("RGB")


# EXIF orientations that turn the stored pixels a quarter: the upright width is the stored height.
_QUARTER_TURNS = (5, 6, 7, 8)


def decode_image(data: io.BufferedIOBase, uri: str, at_least: int | None = None,
                 keep_alpha: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """The image, and its upright (width, height) at full size. `at_least`: a JPEG is decoded
    at the smallest of 1/2, 1/4 or 1/8 of its size whose longer side is still at least this
    (DCT scaling, as thumbnailers do: every byte is still read and checked, at a fraction of
    the cost: a 12-megapixel photo decodes in 0.01 s at 1/4 against 0.3 s whole)."""
    try:
        with Image.open(data) as im:
            w, h = im.size
            full = (h, w) if im.getexif().get(0x0112, 1) in _QUARTER_TURNS else (w, h)
            if at_least is not None and max(w, h) > at_least:
                scale = at_least / max(w, h)
                im.draft(im.mode, (max(1, round(w * scale)), max(1, round(h * scale))))
            im = ImageOps.exif_transpose(im)
            icc = im.info.get("icc_profile")
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
            elif im.mode in ("LA", "La", "RGBa"):
                im = im.convert("RGBA")
            alpha = np.asarray(im.getchannel("A"), np.uint16) if im.mode == "RGBA" else None
            if alpha is not None:
                im = im.convert("RGB")
            if im.mode in _DEEP:
                im = _eight_bit(im)
            rgb = np.asarray(_to_srgb(im, icc, uri), dtype=np.uint8)
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        raise MediaError(f"cannot decode image {uri}: {str(e).rstrip('.')}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise MediaError(f"cannot decode image {uri}: {e}") from None
    if keep_alpha:  # RGBA, straight: a layer's own alpha, opaque where the file has none
        a = np.full(rgb.shape[:2], 255, np.uint8) if alpha is None else alpha.astype(np.uint8)
        return np.ascontiguousarray(np.dstack([rgb, a])), full
    if alpha is not None:  # over black: premultiply
        rgb = ((rgb.astype(np.uint16) * alpha[:, :, None] + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(rgb), full


def load_image(uri: str, counter: ReadCounter | None = None, at_least: int | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3), C-contiguous, upright, sRGB; `at_least`: where a smaller copy will do
    (decode_image), its longer side."""
    return load_image_sized(uri, counter, at_least)[0]


def load_rgba(uri: str, counter: ReadCounter | None = None) -> np.ndarray:
    """RGBA uint8 (H, W, 4), straight alpha, upright, sRGB: an image drawn over a frame with its
    transparency (a logo)."""
    if generated(uri):
        rgb = load_image(uri, counter)
        return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    with open_source(uri, counter) as f:
        return decode_image(f, uri, keep_alpha=True)[0]


def load_image_sized(uri: str, counter: ReadCounter | None = None,
                     at_least: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """load_image, with the image's upright (width, height) at full size."""
    if uri.startswith("sample:"):
        rgb = _sample(uri.split(":", 1)[1])
        return rgb, (rgb.shape[1], rgb.shape[0])
    if cards.is_card(uri):
        rgb = cards.parse(uri).image()
        return rgb, (rgb.shape[1], rgb.shape[0])
    with open_source(uri, counter) as f:
        return decode_image(f, uri, at_least)
