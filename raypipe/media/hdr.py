"""HDR to SDR: PQ (SMPTE ST 2084) and HLG (ARIB STD-B67) video shown on an SDR BT.709 output.

Phones record HDR by default, so an HDR clip is an ordinary input, not an error. The
decoder gives 16-bit non-linear BT.2020 RGB; each channel goes to linear light relative to
SDR reference white (203 cd/m², ITU-R BT.2408), the primaries go to BT.709, and the
luminance passes a tone curve that is the identity below a knee and rolls off smoothly to
white above it (hue kept: the three channels are scaled together), then BT.709's gamma.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

SDR_WHITE = 203.0  # cd/m²
_KNEE = 0.75  # relative to SDR white: below it the picture is left as it was graded
# Linear BT.2020 RGB -> linear BT.709 RGB (ITU-R BT.2087).
_BT2020_TO_709 = np.array([[1.6605, -0.5876, -0.0728],
                           [-0.1246, 1.1329, -0.0083],
                           [-0.0182, -0.1006, 1.1187]], np.float32)


def _pq_to_linear(e: np.ndarray) -> np.ndarray:
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(e, 1 / m2)
    return 10000.0 * np.power(np.maximum(p - c1, 0) / (c2 - c3 * p), 1 / m1)


def _hlg_to_linear(e: np.ndarray) -> np.ndarray:
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    scene = np.where(e <= 0.5, e * e / 3, (np.exp((e - c) / a) + b) / 12)
    # The OOTF for a 1000 cd/m² display (system gamma 1.2), per channel.
    return 1000.0 * np.power(scene, 1.2)


@functools.lru_cache(maxsize=2)
def _lut(kind: str) -> np.ndarray:
    """16-bit code value -> linear light, 1.0 = SDR reference white."""
    e = np.arange(65536, dtype=np.float64) / 65535
    nits = _pq_to_linear(e) if kind == "pq" else _hlg_to_linear(e)
    return (nits / SDR_WHITE).astype(np.float32)


def tone_map(rgb48: np.ndarray, kind: str) -> np.ndarray:
    """(H, W, 3) uint16 non-linear BT.2020 RGB -> (H, W, 3) uint8 BT.709 RGB."""
    linear = cv2.transform(_lut(kind)[rgb48], _BT2020_TO_709)
    np.maximum(linear, 0, out=linear)
    y = linear @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    over = np.maximum(y - _KNEE, 0) / (1 - _KNEE)
    mapped = np.where(y > _KNEE, _KNEE + (1 - _KNEE) * over / (1 + over), y)
    linear *= (mapped / np.maximum(y, 1e-6))[:, :, None]
    np.clip(linear, 0, 1, out=linear)
    return np.round(np.power(linear, 1 / 2.4) * 255).astype(np.uint8)
