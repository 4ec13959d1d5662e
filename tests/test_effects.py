"""Frame math, measured on real photographs: every effect and transition by the numbers."""
import cv2
import numpy as np
import pytest
import skimage.data

from raypipe.detection.detections import Detections, Subject
from raypipe.frames.effects import EFFECTS, KenBurnsParams, PanParams, PunchInParams, Shot, make_params
from raypipe.frames.transitions import TRANSITIONS
from raypipe.frames.view import Framing, Pyramid, View

pytestmark = pytest.mark.unit

W, H = 320, 180


@pytest.fixture(scope="module")
def astronaut():
    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def coffee():
    return np.ascontiguousarray(skimage.data.coffee())


def subject_of(img, box):
    x0, y0, x1, y1 = box
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 255
    return Subject(tuple(map(float, box)), mask, 1.0, "test")


FACE = (150, 20, 350, 260)  # the astronaut's face and helmet


def render(img, subject, effect, p=0.5, w=W, h=H, seconds=2.0, **params):
    return Shot(effect, make_params(effect, params), w, h, seconds).frame(img, subject, p)


def sharpness(gray):
    return cv2.Laplacian(gray, cv2.CV_64F).var()


def gray(rgb):
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def second_difference(views):
    c = np.array([(v.cx, v.cy, v.w) for v in views])
    return np.abs(np.diff(c, 2, axis=0)).max()


# ---- sampling -------------------------------------------------------------------------


def test_identity_view_reproduces_the_source_exactly(astronaut):
    h, w = astronaut.shape[:2]
    out = Pyramid(astronaut).sample(View(w / 2, h / 2, w, h), w, h)
    assert np.array_equal(out, astronaut)


def test_half_size_view_is_filtered_not_aliased(astronaut):
    h, w = astronaut.shape[:2]
    out = Pyramid(astronaut).sample(View(w / 2, h / 2, w, h), w // 2, h // 2)
    area = cv2.resize(astronaut, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - area).max() <= 1


def test_a_slow_sub_pixel_move_changes_frames_gradually_not_in_steps(astronaut):
    # A pan of 0.05 px per frame: with integer crops most frames would repeat and every
    # twentieth would jump a pixel; with filtered sampling each frame moves a little.
    pyr = Pyramid(astronaut)
    frames = [pyr.sample(View(256 + 0.05 * k, 256, 400, 225), W, H).astype(np.float64) for k in range(21)]
    steps = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]
    assert min(steps) > 0.02 and max(steps) < 3 * np.median(steps)


# ---- cameras --------------------------------------------------------------------------


def inside_source(v: View, w=512, h=512):
    return (v.cx - v.w / 2 >= -1e-6 and v.cx + v.w / 2 <= w + 1e-6 and v.cy - v.h / 2 >= -1e-6
            and v.cy + v.h / 2 <= h + 1e-6)


def test_ken_burns_moves_smoothly_toward_the_subject_and_keeps_in_the_source():
    box = (180, 30, 330, 200)
    framing = Framing(512, 512, 16 / 9, box)
    views = [EFFECTS["ken_burns"].camera(framing, KenBurnsParams(zoom=1.8), p, 1.0) for p in np.linspace(0, 1, 90)]
    c = np.array([(v.cx, v.cy, v.w) for v in views])
    assert c[-1, 2] == pytest.approx(c[0, 2] / 1.8)
    assert np.all(np.diff(c[:, 2]) <= 1e-9)  # zooms in, never back out
    assert second_difference(views) < 0.5  # px/frame^2: no jerks
    end = views[-1]
    assert abs(end.cx - (box[0] + box[2]) / 2) < 1 and end.cy - end.h / 2 <= (box[1] + box[3]) / 2 <= end.cy + end.h / 2
    assert all(inside_source(v) for v in views)


def test_pan_moves_sideways_at_one_size_and_ends_on_the_subject():
    box = (600, 200, 700, 330)  # right of centre: the pan starts from the left edge
    framing = Framing(1024, 512, 16 / 9, box)
    views = [EFFECTS["pan"].camera(framing, PanParams(), p, 3.0) for p in np.linspace(0, 1, 90)]
    assert len({round(v.w, 6) for v in views}) == 1
    assert views[0].cx == pytest.approx(views[0].w / 2)
    assert views[-1].cx == pytest.approx((box[0] + box[2]) / 2)
    assert np.all(np.diff([v.cx for v in views]) >= -1e-9)
    assert second_difference(views) < 0.5
    assert all(inside_source(v, 1024, 512) for v in views)


def test_punch_in_holds_wide_then_zooms_quickly_at_its_moment_then_holds_close():
    framing = Framing(512, 512, 16 / 9, (180, 30, 330, 200))
    params = PunchInParams(at=1.0, length=0.3, zoom=2.0)
    seconds = 3.0
    t = np.arange(0, 91) / 30
    widths = np.array([EFFECTS["punch_in"].camera(framing, params, k / 90, seconds).w for k in range(91)])
    wide, close = framing.cover().w, framing.toward_subject(2.0).w
    assert np.allclose(widths[t <= 1.0], wide) and np.allclose(widths[t >= 1.3 + 1e-9], close)
    moving = (t > 1.0) & (t < 1.3)
    assert moving.sum() >= 8 and np.all(np.diff(widths[(t >= 1.0) & (t <= 1.3 + 1e-9)]) < 0)


def test_reframe_keeps_the_whole_subject_in_frame_for_any_output_aspect(astronaut, coffee):
    for img, box in ((astronaut, (68, 89, 471, 466)), (coffee, (154, 35, 443, 341))):
        for w, h in ((180, 320), (320, 180), (240, 240)):
            shot = Shot("reframe", make_params("reframe", {}), w, h)
            x0, y0, x1, y1 = shot.screen_box(img.shape[1::-1], box, 0.5)
            assert x0 >= -0.5 and y0 >= -0.5 and x1 <= w + 0.5 and y1 <= h + 0.5, (box, w, h)
            assert max((x1 - x0) / w, (y1 - y0) / h) > 0.75  # and it fills the frame, not a thumbnail


def test_reframe_fills_past_the_source_with_a_blurred_dimmed_copy_not_black(astronaut):
    # 9:16 from a square photo whose subject is wider than a 9:16 crop: the view reaches
    # above and below the source.
    frame = render(astronaut, subject_of(astronaut, (68, 89, 471, 466)), "reframe", w=180, h=320)
    middle = frame[120:200]
    for band in (frame[:40], frame[-40:]):  # the source spans rows 61..258 of 320
        assert 15 < band.mean() < 0.8 * middle.mean()  # dimmed, not black
        assert sharpness(gray(band)) < 0.02 * sharpness(gray(middle))  # blurred
    black = render(astronaut, subject_of(astronaut, (68, 89, 471, 466)), "reframe", w=180, h=320, fill="black")
    assert black[:30].max() <= 2


# ---- looks ----------------------------------------------------------------------------


def test_focus_blurs_outside_the_mask_only(astronaut):
    frame = gray(render(astronaut, subject_of(astronaut, FACE), "focus", w=512, h=512))
    src = gray(astronaut)
    assert sharpness(frame[40:240, 170:330]) > 0.8 * sharpness(src[40:240, 170:330])  # the subject keeps its detail
    assert sharpness(frame[300:500, 0:140]) < 0.1 * sharpness(src[300:500, 0:140])  # the background loses it


def test_focus_strength_animates_from_sharp_to_blurred(astronaut):
    shot = Shot("focus", make_params("focus", {"strength": 0.0, "strength_end": 1.0}), 512, 512)
    s = subject_of(astronaut, FACE)
    bg = [sharpness(gray(shot.frame(astronaut, s, p))[300:500, 0:140]) for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert bg[0] == pytest.approx(sharpness(gray(astronaut)[300:500, 0:140]), rel=0.05)
    assert all(a > b for a, b in zip(bg, bg[1:]))


def test_focus_desaturate_greys_the_background_and_keeps_the_subjects_colour(astronaut):
    frame = render(astronaut, subject_of(astronaut, FACE), "focus", w=512, h=512, mode="desaturate")
    sat = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)[:, :, 1].astype(float)
    src_sat = cv2.cvtColor(astronaut, cv2.COLOR_RGB2HSV)[:, :, 1].astype(float)
    assert sat[300:500, 0:140].mean() < 3 and src_sat[300:500, 0:140].mean() > 40
    assert sat[60:220, 190:310].mean() > 0.9 * src_sat[60:220, 190:310].mean()


def test_spotlight_darkens_everything_but_the_subject(astronaut):
    frame = gray(render(astronaut, subject_of(astronaut, FACE), "spotlight", w=512, h=512)).astype(float)
    src = gray(astronaut).astype(float)
    assert frame[60:220, 190:310].mean() > 0.95 * src[60:220, 190:310].mean()
    assert frame[300:500, 0:140].mean() < 0.4 * src[300:500, 0:140].mean()
    corner = frame[480:, :30].mean() / src[480:, :30].mean()
    edge = frame[300:340, 0:30].mean() / src[300:340, 0:30].mean()
    assert corner < edge  # the vignette: darker still toward the corners


# ---- transitions ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sides(astronaut, coffee):
    a_shot, b_shot = Shot("static", make_params("static", {}), W, H), Shot("static", make_params("static", {}), W, H)
    a_subject, b_subject = subject_of(astronaut, FACE), subject_of(coffee, (154, 35, 443, 341))
    return (lambda zoom=1.0: a_shot.frame(astronaut, a_subject, 0.0, zoom),
            lambda zoom=1.0: b_shot.frame(coffee, b_subject, 0.0, zoom))


def blend(name, sides, alpha, **params):
    return TRANSITIONS[name].blend(*sides, alpha, make_params(name, params, TRANSITIONS, "transition"))


def test_crossfade_middle_is_the_mean_of_its_sides(sides):
    a, b = sides[0]().astype(int), sides[1]().astype(int)
    assert np.abs(blend("crossfade", sides, 0.5).astype(int) - (a + b) / 2).max() <= 1


def test_fade_black_goes_through_black(sides):
    a, b = sides[0]().astype(float), sides[1]().astype(float)
    assert blend("fade_black", sides, 0.5).max() <= 1
    assert np.abs(blend("fade_black", sides, 0.25) - a * 0.5).max() <= 1
    assert np.abs(blend("fade_black", sides, 0.75) - b * 0.5).max() <= 1


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_wipe_reveals_the_next_shot_behind_a_moving_edge(sides, direction):
    a, b = sides[0](), sides[1]()
    frame = blend("wipe", sides, 0.5, direction=direction)
    # "left": the edge travels leftwards, so the next shot is already on the right.
    new = {"left": np.s_[:, W * 3 // 4:], "right": np.s_[:, : W // 4],
           "up": np.s_[H * 3 // 4:], "down": np.s_[: H // 4]}
    old = {"left": np.s_[:, : W // 4], "right": np.s_[:, W * 3 // 4:],
           "up": np.s_[: H // 4], "down": np.s_[H * 3 // 4:]}
    assert np.array_equal(frame[new[direction]], b[new[direction]])
    assert np.array_equal(frame[old[direction]], a[old[direction]])
    assert np.array_equal(blend("wipe", sides, 0.0, direction=direction), a)
    assert np.array_equal(blend("wipe", sides, 1.0, direction=direction), b)


def test_zoom_through_flies_into_one_subject_and_out_of_the_next():
    asked = []

    def side(name):
        def render_side(zoom):
            asked.append((name, zoom))
            return np.zeros((H, W, 3), np.uint8)
        return render_side

    path = []
    for alpha in np.linspace(0.02, 0.98, 49):
        asked.clear()
        blend("zoom_through", (side("a"), side("b")), alpha, zoom=3.0)
        path.append(dict(asked))
    za = [p["a"] for p in path if "a" in p]
    zb = [p["b"] for p in path if "b" in p]
    assert za[0] < 1.01 and np.all(np.diff(za) > 0)  # into the outgoing subject, faster and faster
    assert zb[-1] < 1.01 and np.all(np.diff(zb) < 0)  # out of the incoming one, slowing down
    assert sum(len(p) == 2 for p in path) <= 0.25 * len(path)  # both sides only in the short dissolve


def test_zooming_a_view_keeps_the_subjects_focus_point_in_place():
    framing = Framing(512, 512, 16 / 9, (180, 30, 330, 200))
    view = framing.cover()
    fx, fy = framing.focus(view.h)

    def on_screen(v):
        return (fx - (v.cx - v.w / 2)) / v.w, (fy - (v.cy - v.h / 2)) / v.h

    for zoom in (1.5, 2.0, 3.0):
        assert on_screen(framing.zoomed(view, zoom)) == pytest.approx(on_screen(view))


# ---- video tracks ---------------------------------------------------------------------


def test_a_noisy_keyframe_track_gives_a_smooth_subject_path():
    rng = np.random.default_rng(0)
    times = np.arange(0, 4.01, 0.5)
    truth = np.stack([100 + 40 * times, 80 + 0 * times, 300 + 40 * times, 280 + 0 * times], axis=1)
    noisy = truth + rng.normal(0, 12, truth.shape)
    mask = np.zeros((360, 640), np.uint8)
    items = {"clip": [(float(t), Subject(tuple(b), mask, 0.5, "test")) for t, b in zip(times, noisy)]}
    track = Detections.pack(items, smoothing=0.5).track("clip")
    t = np.arange(0, 4.0, 1 / 30)
    path = np.array([track.box_at(x) for x in t])
    raw = np.array([noisy[np.argmin(np.abs(times - x))] for x in t])  # holding the nearest keyframe
    assert np.abs(np.diff(path, 2, axis=0)).max() < 0.2 * np.abs(np.diff(raw, 2, axis=0)).max()
    assert np.abs(np.diff(path, 2, axis=0)).max() < 0.5  # px/frame^2
    assert np.abs(path[15:-15, 0] - (100 + 40 * t[15:-15])).mean() < 8  # and it still follows the subject


@pytest.mark.parametrize("speed", [100, 300])
def test_a_moving_subjects_track_has_no_lag_at_either_end_of_its_keyframes(speed):
    """A subject crossing the frame at `speed` px/s, detected exactly at 2 keyframes a second
    over 3 s: every frame of the range, the first and last included, is on the subject."""
    times = np.arange(0, 3.01, 0.5)
    x = 100 + speed * times
    mask = np.zeros((360, 640), np.uint8)
    items = {"clip": [(float(t), Subject((a, 50.0, a + 80, 130.0), mask, 0.5, "test")) for t, a in zip(times, x)]}
    track = Detections.pack(items, smoothing=0.5).track("clip")
    t = np.arange(0, 3.0 + 1e-9, 1 / 30)  # every frame, ends included
    path = np.array([track.box_at(v)[0] for v in t])
    assert np.abs(path - (100 + speed * t)).max() < 0.5  # was 26 px at 100 px/s (a weighted mean)
    # Beyond one keyframe interval past the ends it holds still instead of extrapolating.
    assert track.box_at(10.0) == track.box_at(3.5) and track.box_at(-10.0) == track.box_at(-0.5)


# ---- parameters -----------------------------------------------------------------------


def test_every_effect_renders_with_its_defaults(astronaut):
    for name in EFFECTS:
        frame = render(astronaut, subject_of(astronaut, FACE), name)
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8 and frame.std() > 10, name


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="unknown parameter 'zom' for effect ken_burns"):
        make_params("ken_burns", {"zom": 2})
    with pytest.raises(ValueError, match="zoom: must be >= 1"):
        make_params("ken_burns", {"zoom": 0.5})
    with pytest.raises(ValueError, match="mode: must be blur or desaturate"):
        make_params("focus", {"mode": "sepia"})
    with pytest.raises(ValueError, match="unknown transition 'dissolve'"):
        make_params("dissolve", {}, TRANSITIONS, "transition")
    with pytest.raises(ValueError, match="direction: must be left, right, up or down"):
        make_params("wipe", {"direction": "diagonal"}, TRANSITIONS, "transition")
