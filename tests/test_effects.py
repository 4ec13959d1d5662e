"""Frame math, measured on real photographs."""
import cv2
import numpy as np
import pytest
import skimage.data

from raypipe.detections import Subject
from raypipe.effects import Framing, KenBurnsParams, Pyramid, Shot, View, crossfade, ken_burns_camera, make_params


@pytest.fixture(scope="module")
def astronaut():
    return np.ascontiguousarray(skimage.data.astronaut())


def subject_of(img, box):
    x0, y0, x1, y1 = box
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 255
    return Subject(tuple(map(float, box)), mask, 1.0, "test")


def test_identity_view_reproduces_the_source_exactly(astronaut):
    h, w = astronaut.shape[:2]
    out = Pyramid(astronaut).sample(View(w / 2, h / 2, w, h), w, h)
    assert np.array_equal(out, astronaut)


def test_half_size_view_is_filtered_not_aliased(astronaut):
    h, w = astronaut.shape[:2]
    out = Pyramid(astronaut).sample(View(w / 2, h / 2, w, h), w // 2, h // 2)
    area = cv2.resize(astronaut, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - area).max() <= 1


def test_crossfade_middle_is_the_mean_of_its_sides(astronaut):
    other = np.ascontiguousarray(astronaut[::-1])
    mid = crossfade(astronaut, other, 0.5)
    assert np.abs(mid.astype(int) - (astronaut.astype(int) + other) / 2).max() <= 1


def test_focus_blurs_outside_the_mask_only(astronaut):
    box = (150, 20, 350, 260)  # the face and helmet
    shot = Shot(astronaut, subject_of(astronaut, box), "focus", make_params("focus", {}), 512, 512)
    frame = cv2.cvtColor(shot.frame(0.5), cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(frame, cv2.CV_64F)
    inside = lap[40:240, 170:330].var()
    outside = lap[300:500, 0:140].var()
    source_lap = cv2.Laplacian(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), cv2.CV_64F)
    assert inside > 0.8 * source_lap[40:240, 170:330].var()  # the subject keeps its detail
    assert outside < 0.1 * source_lap[300:500, 0:140].var()  # the background loses it


def test_ken_burns_moves_smoothly_toward_the_subject_and_keeps_in_the_source(astronaut):
    box = (180, 30, 330, 200)
    framing = Framing(512, 512, 16 / 9, box)
    params = KenBurnsParams(zoom=1.8)
    views = [ken_burns_camera(framing, params, p) for p in np.linspace(0, 1, 90)]
    c = np.array([(v.cx, v.cy, v.w) for v in views])
    assert c[-1, 2] == pytest.approx(c[0, 2] / 1.8)
    assert np.all(np.diff(c[:, 2]) <= 1e-9)  # zooms in, never back out
    assert np.abs(np.diff(c, 2, axis=0)).max() < 0.5  # px/frame^2: no jerks
    fx, fy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    end = views[-1]
    assert abs(end.cx - fx) < 1 and end.cy - end.h / 2 <= fy <= end.cy + end.h / 2
    for v in views:
        assert v.cx - v.w / 2 >= -1e-6 and v.cx + v.w / 2 <= 512 + 1e-6
        assert v.cy - v.h / 2 >= -1e-6 and v.cy + v.h / 2 <= 512 + 1e-6


def test_unknown_effect_parameter_is_named():
    with pytest.raises(ValueError, match="unknown parameter 'zom' for effect ken_burns"):
        make_params("ken_burns", {"zom": 2})
    with pytest.raises(ValueError, match="zoom: must be >= 1"):
        make_params("ken_burns", {"zoom": 0.5})

