"""Saliency without weights: the detector that needs nothing downloaded.

Two classic maps, averaged: spectral residual (Hou & Zhang, CVPR 2007) finds what is
unexpected in the image's spectrum but mostly lights up edges; frequency-tuned contrast
(Achanta et al., CVPR 2009) fills whole regions whose colour stands out from the image's
mean. Together, with a mild centre prior, they find whole objects in most photographs.
"""
from __future__ import annotations

import cv2
import numpy as np

from raypipe.detection.detections import MASK_SIDE, Subject, subject_from_heat

_SR_SIDE = 64  # spectral residual works on a 64x64 thumbnail, whatever the source size
_WORK_W = 128  # width of the grid the two maps are combined on
# The subject is found on a map at most this many pixels a side: one upsampled from a grid
# 128 wide holds no more detail at 12 megapixels (thresholding it there cost 0.4 s a photo),
# and the mask travels at half this side at most anyway (MASK_SIDE).
HEAT_SIDE = 2 * MASK_SIDE


def _unit(a: np.ndarray) -> np.ndarray:
    a = a - a.min()
    return a / max(float(a.max()), 1e-12)


def spectral_residual(gray: np.ndarray) -> np.ndarray:
    small = cv2.resize(gray, (_SR_SIDE, _SR_SIDE), interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fft2(small)
    log_amp = np.log(np.abs(spectrum) + 1e-8)
    residual = log_amp - cv2.blur(log_amp, (3, 3), borderType=cv2.BORDER_REPLICATE)
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    return _unit(cv2.GaussianBlur(sal.astype(np.float32), (0, 0), 2.5))


def frequency_tuned(lab: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(lab, (0, 0), 2.0)
    return _unit(np.linalg.norm(blurred - lab.reshape(-1, 3).mean(0), axis=2))


def saliency_map(rgb: np.ndarray, side: int | None = None) -> np.ndarray:
    """[0, 1] float32 saliency at the source's size, or at most `side` pixels a side."""
    h, w = rgb.shape[:2]
    work = (_WORK_W, max(8, round(_WORK_W * h / w)))
    small = cv2.resize(rgb, work, interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    sr = cv2.resize(spectral_residual(gray), work, interpolation=cv2.INTER_LINEAR)
    combined = (sr + frequency_tuned(lab)) / 2
    # Photographers centre subjects more often than not, and both maps react to the
    # frame's borders; a mild Gaussian prior settles ties toward the middle.
    yy, xx = np.mgrid[0 : work[1], 0 : work[0]].astype(np.float32)
    prior = np.exp(-((xx / (work[0] - 1) - 0.5) ** 2 + (yy / (work[1] - 1) - 0.5) ** 2) / (2 * 0.3**2))
    scale = min(1.0, side / max(h, w)) if side else 1.0
    out = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(_unit(combined * prior), out, interpolation=cv2.INTER_LINEAR)


def detect_saliency(rgb: np.ndarray, method: str = "saliency") -> Subject:
    """The subject, found on a map at most HEAT_SIDE a side; its box in the image's pixels."""
    h, w = rgb.shape[:2]
    heat = saliency_map(rgb, HEAT_SIDE)
    subject = subject_from_heat(heat, None, method)
    if subject is None:  # a flat image: the whole frame is the subject
        return Subject((0.0, 0.0, float(w), float(h)), np.full(heat.shape, 255, np.uint8), 0.0, method, (w, h))
    return subject.at_size((w, h))
