"""What the benchmarks share: their medians, and real frames to measure with."""
from __future__ import annotations

import statistics

import numpy as np


def median(values) -> float:
    return round(statistics.median(values), 3)


def demo_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """Real frames to measure with: a ken_burns move over the astronaut, as the demo opens."""
    from raypipe.detection.saliency import detect_saliency
    from raypipe.frames.effects import Shot, make_params
    from raypipe.media import load_image

    img = load_image("sample:astronaut")
    subject = detect_saliency(img)
    shot = Shot("ken_burns", make_params("ken_burns", {"zoom": 1.8}), width, height)
    return [shot.frame(img, subject, k / (count - 1)) for k in range(count)]
