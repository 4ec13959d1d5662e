"""Subjects from heat maps, the weight-free detector, and masks on the way to the store."""
import cv2
import numpy as np
import pytest
import skimage.data

from raypipe.detection.detections import CompactSubject, Detections, subject_from_heat
from raypipe.detection.saliency import detect_saliency

pytestmark = pytest.mark.unit


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_saliency_finds_a_subject_on_a_plain_background():
    rng = np.random.default_rng(0)
    img = np.full((360, 640, 3), (90, 110, 100), np.uint8)
    img = cv2.add(img, rng.integers(0, 12, img.shape, dtype=np.uint8))  # sensor-like noise
    cv2.circle(img, (400, 170), 70, (230, 60, 40), -1)
    s = detect_saliency(img)
    assert iou(s.box, (330, 100, 471, 241)) > 0.7
    assert s.mask[170, 400] == 255 and s.mask[20, 20] == 0


def test_the_heaviest_component_wins_over_the_hottest_pixel():
    heat = np.zeros((100, 100), np.float32)
    heat[10:12, 10:12] = 1.0  # a tiny hot spot
    heat[50:90, 40:90] = 0.8  # a subject-sized warm region
    s = subject_from_heat(heat, 0.5, "test")
    assert s.box == (40.0, 50.0, 90.0, 90.0)
    assert subject_from_heat(np.full((8, 8), 0.3, np.float32), None, "test") is None  # flat: no subject


def test_masks_survive_the_trip_from_the_detector_exactly():
    s = detect_saliency(np.ascontiguousarray(skimage.data.astronaut()))
    compact = CompactSubject.of(s)
    assert len(compact.mask_png) * 20 < s.mask.nbytes  # the detector's reply stays small
    packed = Detections.pack({"a": compact.subject(), "b": compact.subject()})
    assert packed.masks.flags.c_contiguous and packed.masks.nbytes == 2 * s.mask.nbytes
    back = packed.subject("b")
    assert np.array_equal(back.mask, s.mask) and back.box == s.box
    assert np.shares_memory(back.mask, packed.masks)  # a view into the one buffer, not a copy


def test_infos_of_parts_that_ran_side_by_side_merge_into_one_pass():
    """A detector pool's actors each detect some of a call's sources: the call took as long as
    the slowest, read and reused what they all did, and fell back if any did."""
    from raypipe.detection.info import DetectionInfo

    a = DetectionInfo(detector="clip:m/w", fallback_reason=None, detections_reused=1, device="cuda", clip_loads=1,
                      seconds=2.5, bytes_read=100)
    b = DetectionInfo(detector="clip:m/w", fallback_reason="gone", detections_reused=2, device="cpu", clip_loads=0,
                      seconds=4.0, bytes_read=50)
    assert DetectionInfo.merged([a, b]) == DetectionInfo(
        detector="clip:m/w", fallback_reason="gone", detections_reused=3, device="cuda", clip_loads=1, seconds=4.0,
        bytes_read=150)
