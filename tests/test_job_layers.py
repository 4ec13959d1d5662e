"""A job's layers: text, images, boxes and videos over the segments, timed in global frames, anchored,
animated, kept clear of the subject where asked; placement measured with numbers on decoded
frames. (tests/test_layers.py is the package's import contract.)"""
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import run_cli
from media_inputs import encode_rgb, ffmpeg_decode
from raypipe.api import config
from raypipe.engine.cache import segment_keys
from raypipe.engine.driver import render
from raypipe.engine.staging import local_inputs
from raypipe.errors import ConfigError, JobError
from raypipe.frames.captions import paint, split
from raypipe.frames.layers import ANCHORS, ANIMATIONS, BoxLayer, Layer, Motion, VideoLayer
from raypipe.frames.layers.anchors import origin
from raypipe.frames.layers.motion import Box
from raypipe.frames.layers.shapes import rounded
from raypipe.plan.timeline import plan

W, H, FPS = 320, 180, 12
CLIP = str(Path(__file__).resolve().parents[1] / "raypipe" / "assets" / "demo_clip.mp4")
CARD = (0x20, 0x30, 0x40)
SMALL = [f"render.width={W}", f"render.height={H}", f"render.fps={FPS}", "detector=saliency", "job.audio.path=null"]


def job(layers, segments=None, **extra) -> dict:
    """Two seconds of a flat card (nothing there but what a layer draws), or `segments`."""
    return {"name": "layers", "segments": segments or [{"source": "color:#203040", "duration": 2.0}],
            "layers": layers, **extra}


def planned(layers, segments=None, *overrides):
    cfg = config(job(layers, segments), [*SMALL, *overrides])
    return plan(cfg.job, cfg.render)


def rendered(tmp_path, layers, segments=None, tag="video"):
    """The job rendered, its frames decoded by ffmpeg, and its plan."""
    cfg = config(job(layers, segments, output=str(tmp_path / f"{tag}.mp4")), SMALL)
    result = render(cfg, str(tmp_path / f"run-{tag}"), quiet=True)
    return ffmpeg_decode(tmp_path / f"{tag}.mp4", W, H), result.plan


def drawn(frames, background=CARD, threshold=40) -> np.ndarray:
    """Per frame and pixel, whether it differs from the card by more than H.264 moves a flat colour."""
    return np.abs(frames.astype(int) - np.array(background)).max(axis=-1) > threshold


# ---- unit: the schema, the plan, the pure functions ------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("layer,message", [
    ({"type": "text", "txt": "x"}, "job.layers[0].txt: Key 'txt' not in 'LayerCfg'; did you mean 'text'?"),
    ({"type": "text", "in": {"tpye": "fade"}}, "job.layers[0].in.tpye: Key 'tpye' not in 'AnimationCfg'; did you "
                                               "mean 'type'?"),
])
def test_a_typo_in_a_layer_fails_with_its_full_path(layer, message):
    with pytest.raises(ConfigError) as e:
        config(job([{"type": "box"}, layer][1:]))
    assert str(e.value) == message


@pytest.mark.unit
@pytest.mark.parametrize("fragment,message", [
    ({"job": job([{"type": "box"}, {"type": "text", "opacity": "high"}])},
     "job.layers[1].opacity: Value 'high' of type 'str' could not be converted to Float"),
    ({"job": job([{"type": "box"}, {"type": "text", "in": "fade"}])},
     "job.layers[1].in: must be a mapping of {type, duration} (got 'fade')"),
    ({"job": job([{"type": "text", "offset": 0.1}])}, "job.layers[0].offset: must be a list (got 0.1)"),
    ({"job": job([{"type": "text", "offset": [0.1, "up"]}])},
     "job.layers[0].offset[1]: Value 'up' of type 'str' could not be converted to Float"),
    ({"job": job([{"type": "text", "start": "abc"}])},
     "job.layers[0].start: Value 'abc' of type 'str' could not be converted to Float"),
    ({"job": job([], [{"source": "color:#203040", "duration": "abc"}])},
     "job.segments[0].duration: Value 'abc' of type 'str' could not be converted to Float"),
    ({"job": job([]), "render": {"variants": [{"name": "a", "width": 160, "height": 90,
                                               "layers": [{"type": "box"}, {"type": "text", "in": {"duration": "x"}}]}]}},
     "render.variants[0].layers[1].in.duration: Value 'x' of type 'str' could not be converted to Float"),
])
def test_a_wrong_typed_value_in_a_list_item_fails_with_its_full_path(fragment, message):
    with pytest.raises(ConfigError) as e:
        config(fragment)
    assert str(e.value) == message


@pytest.mark.render  # the CLI, which fails before any work
def test_a_layer_without_a_type_and_a_row_field_outside_a_batch_fail_in_one_line_naming_the_field(tmp_path):
    for layer, line in (({"text": "y"}, "error: job.layers[1].type: is required: it has no default"),
                        ({"type": "text", "text": "${row:x}"},
                         "error: job.layers[1].text: ${row:x} is only defined in a batch (python -m raypipe batch)")):
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(job([{"type": "box"}, layer])))
        proc = run_cli(str(path), *SMALL, f"hydra.run.dir={tmp_path / 'run'}", "--quiet")
        assert (proc.returncode, proc.stderr.strip().splitlines()) == (2, [line])


@pytest.mark.unit
def test_layers_are_timed_in_global_frames_or_from_their_segment(caplog):
    segments = [{"source": "color:#000000", "duration": 1.0}, {"source": "color:#ffffff", "duration": 1.0}]
    p = planned([{"type": "box", "start": 0.5},
                 {"type": "box", "segment": 1, "start": 0.25},
                 {"type": "box", "segment": 0, "length": 1.5},
                 {"type": "box", "start": 1.0, "length": 0.5},
                 {"type": "box", "segment": -1, "start": 0.5, "length": 9.0},  # the last segment's, cut at the end
                 {"type": "box", "start": 2.0, "length": 1.0}], segments)  # after the end: left out
    assert [(layer.start, layer.end) for layer in p.layers] == [(6, 24), (15, 24), (0, 18), (12, 18), (18, 24)]
    assert "job.layers[5]: starts at 2.00 s, after the video's end (2.00 s): not drawn" in caplog.text
    first, second = p.segments
    assert [x.where for x in first.layers] == ["job.layers[0]", "job.layers[2]"]
    assert [x.where for x in second.layers] == ["job.layers[0]", "job.layers[1]", "job.layers[2]", "job.layers[3]",
                                                "job.layers[4]"]


@pytest.mark.unit
@pytest.mark.parametrize("layer,where", [
    ({"type": "gif"}, "job.layers[0].type"),
    ({"type": "video"}, "job.layers[0].source"),
    ({"type": "video", "source": "sample:astronaut"}, "job.layers[0].source"),
    ({"type": "video", "source": "/no/such/clip.mp4"}, "job.layers[0].source"),
    ({"type": "video", "source": CLIP, "fit": "fill"}, "job.layers[0].fit"),
    ({"type": "video", "source": CLIP, "cut_to": 60.0}, "job.layers[0].cut_to"),
    ({"type": "video", "source": CLIP, "cut_from": 2.0, "cut_to": 1.0}, "job.layers[0].cut_to"),
    ({"type": "video", "source": CLIP, "speed": 0}, "job.layers[0].speed"),
    ({"type": "box", "cut_from": 1.0}, "job.layers[0].cut_from"),
    ({"type": "text", "text": "x", "mask": "circle"}, "job.layers[0].mask"),
    ({"type": "box", "text": "x"}, "job.layers[0].text"),
    ({"type": "box", "position": "middle"}, "job.layers[0].position"),
    ({"type": "box", "segment": 3}, "job.layers[0].segment"),
    ({"type": "box", "in": {"type": "spin"}}, "job.layers[0].in.type"),
    ({"type": "box", "length": 1.0, "in": {"duration": 0.6}, "out": {"duration": 0.6}}, "job.layers[0].in"),
    ({"type": "box", "segment": 0, "start": 2.0}, "job.layers[0].start"),
    ({"type": "box", "segment": -2}, "job.layers[0].segment"),
    ({"type": "box", "avoid": "faces"}, "job.layers[0].avoid"),
    ({"type": "box", "opacity": 1.5}, "job.layers[0].opacity"),
    ({"type": "box", "width": 0}, "job.layers[0].width"),
    ({"type": "box", "offset": [0.1]}, "job.layers[0].offset"),
    ({"type": "box", "color": "gradient:#fff,#000"}, "job.layers[0].color"),
    ({"type": "box", "color": "radial:#ffffff,#000000,0"}, "job.layers[0].color"),
    ({"type": "box", "color": "#ffffzz"}, "job.layers[0].color"),
    ({"type": "text", "text": ""}, "job.layers[0]"),
    ({"type": "image"}, "job.layers[0].source"),
    ({"type": "image", "source": "/no/such/logo.png"}, "job.layers[0].source"),
])
def test_a_bad_layer_fails_in_one_line_naming_its_key(layer, where):
    with pytest.raises(JobError) as e:
        planned([{"type": "box"}, layer][1:])
    assert e.value.where == where and "\n" not in str(e.value), str(e.value)


@pytest.mark.unit
def test_the_nine_anchors_sit_inside_the_margin_and_the_offset_goes_up():
    shape, m = (20, 40), round(0.05 * H)
    xs = {"left": m, "center": (W - 40) // 2, "right": W - 40 - m}
    ys = {"top": m, "center": (H - 20) // 2, "bottom": H - 20 - m}
    for name in ANCHORS:
        parts = name.split("_")
        col = next((p for p in parts if p in ("left", "right")), "center")
        row = next((p for p in parts if p in ("top", "bottom")), "center")
        assert origin(name, shape, W, H, 0.05) == (xs[col], ys[row]), name
    assert origin("center", shape, W, H, 0.05, (0.25, 0.1)) == (xs["center"] + 80, ys["center"] - 18)


@pytest.mark.unit
def test_masks_are_whole_inside_and_a_circle_covers_its_area():
    assert (rounded(6, 10, 0) == 1).all()
    disk = rounded(100, 100, 50)
    assert disk[50, 50] == 1 and disk[0, 0] == 0 and abs(disk.sum() - np.pi * 50 ** 2) < 5


def over_green(color: str, w=100, h=60) -> np.ndarray:
    """A full-frame box of `color` as a task paints it over a green frame: int (h, w, 3)."""
    box = planned([{"type": "box", "color": color, "width": 1.0, "height": 1.0}],
                  None, f"render.width={w}", f"render.height={h}").layers[0].kind
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:] = (0, 200, 0)
    paint(frame, *split(box.bitmap(0)), (0, 0), 1.0)
    return frame.astype(int)


@pytest.mark.unit
def test_a_gradient_box_is_blended_over_the_frame_by_its_colours_alpha():
    # White, opaque at the left edge, see-through at the right (CSS's 90 degrees): at column x
    # the white's alpha is 1 - t, t = (x + 0.5) / 100, over green (0, 200, 0).
    frame = over_green("gradient:#ffffffff,#ffffff00,90")
    for x in (0, 25, 50, 75, 99):
        t = (x + 0.5) / 100
        want = np.array([255 * (1 - t), 255 * (1 - t) + 200 * t, 255 * (1 - t)])
        assert np.abs(frame[:, x] - want).max() <= 1.5, (x, frame[0, x], want)
    assert (frame == frame[:1]).all()  # each column one colour
    # Blended premultiplied, as CSS blends: a colour fading out keeps its hue, so halfway from
    # opaque red to see-through blue is red at half its alpha, never purple.
    mid = over_green("gradient:#ff0000ff,#0000ff00,90")[:, 50]
    assert np.abs(mid - [0.495 * 255, 0.505 * 200, 0]).max() <= 1.5, mid[0]
    # Radial: the first colour at the centre, the second from the radius out (0.25 of the
    # longer side: 25 pixels), here see-through: the frame's own green.
    radial = over_green("radial:#ffffffff,#ffffff00,0.25")
    assert np.abs(radial[30, 50] - [250, 253, 250]).max() <= 6 and (radial[0, 0] == (0, 200, 0)).all()
    assert (radial[30, 50 + 26:] == (0, 200, 0)).all()
    # A flat colour with alpha, #rrggbbaa.
    assert np.abs(over_green("#ff000080")[10, 10] - [128, 100, 0]).max() <= 1


def box_layer(position="center", avoid=False, shape=(40, 80)):
    return Layer("job.layers[3]", BoxLayer((255, 255, 255), shape, 0.0), 0, 24, Fraction(FPS), position, avoid=avoid)


@pytest.mark.unit
def test_avoid_subject_keeps_clear_of_the_subject_and_the_faces_or_fails_naming_the_layer():
    subject = (100, 0, 220, 180)  # the middle third, top to bottom
    assert box_layer("bottom_left", avoid=True).place([subject], [], W, H, 0) == (0, (9, 131))
    auto = box_layer("auto")  # bottom, top: over the subject; bottom_left is the first clear
    assert auto.place([subject], [], W, H, 0) == (0, (9, 131))
    with pytest.raises(JobError, match=r"^job\.layers\[3\]: cannot keep clear of the subject and the faces of segment "
                                       r"2 at position bottom; make it smaller"):
        box_layer("bottom", avoid=True).place([subject], [], W, H, 2)
    face = (0, 120, 320, 180)  # across the bottom
    assert auto.place([], [face], W, H, 0) == (0, ((W - 80) // 2, 9))
    # Without avoid the position is kept, face or not (the driver warns).
    assert box_layer("bottom").place([subject], [face], W, H, 0) == (0, ((W - 80) // 2, 131))
    # Where no anchor is clear, the line says only what applies to the layer.
    full = (0, 0, W, H)
    for layer, remedy in ((box_layer("auto"), "make it smaller, or give it a position (it is drawn there, with a "
                                              "warning where it covers a face)"),
                          (box_layer("auto", avoid=True), "make it smaller, or drop avoid (auto then keeps clear of "
                                                          "the faces alone)")):
        with pytest.raises(JobError) as e:
            layer.place([], [full], W, H, 0)
        assert e.value.reason.endswith(f"at any position; {remedy}") and ("avoid" in remedy) == layer.avoid


@pytest.mark.unit
@pytest.mark.parametrize("kind,axis,sign", [("slide_left", 0, -1), ("slide_right", 0, 1), ("slide_up", 1, -1),
                                            ("slide_down", 1, 1)])
def test_a_slide_moves_one_way_from_past_the_edge_to_rest_and_on_out_past_the_other(kind, axis, sign):
    layer = Layer("job.layers[0]", BoxLayer((255, 255, 255), (20, 40), 0.0), 0, 36, Fraction(FPS),
                  enter=Motion(kind, 1.0), leave=Motion(kind, 1.0))
    box = Box(140, 80, 40, 20, W, H)
    at = [(box.x + p.dx, box.y + p.dy)[axis] for p in (layer.pose(k, box) for k in range(36))]
    steps = np.diff(at) * sign
    assert (steps >= 0).all() and (steps[:11] > 0).all() and (steps[24:] > 0).all()
    assert at[12:24] == [(box.x, box.y)[axis]] * 12  # at rest between
    # In from just past the edge behind its motion, out to just past the one ahead (half a frame short of each).
    rest, size, extent = (box.x, box.y)[axis], (box.w, box.h)[axis], (W, H)[axis]
    behind, ahead = (extent, -size) if sign < 0 else (-size, extent)
    assert (at[0] - rest) / (behind - rest) > 0.9 and (at[-1] - rest) / (ahead - rest) > 0.9, (at[0], at[-1])


@pytest.mark.unit
def test_a_changed_layer_renders_again_only_the_segments_it_is_over():
    segments = [{"source": "color:#000000", "duration": 1.0}, {"source": "color:#ffffff", "duration": 1.0}]

    def keys(text):
        p = planned([{"type": "text", "text": text, "segment": 1}, {"type": "box", "segment": 0, "length": 0.5}],
                    segments)
        return segment_keys(p, {u: u for u in p.sources}, {u: "detected" for u in p.sources}, 0.5)

    before = keys("$1,250,000")
    assert keys("$1,250,000") == before
    after = keys("$1,195,000")
    assert after[0] == before[0] and after[1] != before[1]


def levels_clip(path, levels, fps=10, width=32, height=18) -> str:
    """A clip of one flat grey per frame, `levels` in order: which of its frames shows is
    readable off any pixel of it."""
    frames = np.repeat(np.array(levels, np.uint8)[:, None, None, None], height * width * 3).reshape(
        len(levels), height, width, 3)
    return str(encode_rgb(path, frames, fps))


@pytest.mark.unit
@pytest.mark.parametrize("fit,rows,cols,clear", [
    # A 40x20 frame of four 10-wide stripes (10, 20, 30, 40), into a 20x20 box: the stripes as
    # columns of the box, rows where they show, and whether the rest of the box is clear.
    ("contain", (5, 15), (10, 20, 30, 40), True),  # whole: each stripe 5 wide, 5 rows clear above and below
    ("cover", (0, 20), (20, 30), False),  # cropped about its centre: the two middle stripes, 10 wide
    ("stretch", (0, 20), (10, 20, 30, 40), False),  # squeezed: each 5 wide, top to bottom
    ("contain-blur", (5, 15), (10, 20, 30, 40), False),  # whole, over a blur of itself
])
def test_a_video_frame_fits_its_box_as_fit_says(fit, rows, cols, clear):
    image = np.repeat(np.repeat(np.array([10, 20, 30, 40], np.uint8), 10)[None, :, None], 20, axis=0).repeat(3, 2)
    kind = VideoLayer("clip.mp4", (20, 20), fit, 0.0, 1.0, 1.0)
    picture, alpha = kind.picture(image), kind.alpha(40, 20)
    assert picture.shape == (20, 20, 3) and alpha.shape == (20, 20)
    top, bottom = rows
    shown = picture[top:bottom, :, 0].astype(int)
    step = 20 // len(cols)
    expected = np.repeat(np.array(cols), step)
    # Resampled: the stripes' edges blend over a pixel, their middles are exact.
    middles = [i * step + step // 2 for i in range(len(cols))]
    assert (shown[:, middles] == expected[middles]).all(), shown[0]
    assert (alpha[top:bottom] == 1).all()
    outside = np.r_[0:top, bottom:20]
    assert (alpha[outside] == 0).all() if clear else (alpha == 1).all()
    if fit == "contain-blur":  # above and below it, the blurred copy: between the stripes' extremes
        assert 10 < picture[outside, :, 0].mean() < 40


@pytest.mark.unit
def test_a_video_layer_shows_the_same_frames_whatever_task_decodes_them_and_holds_its_last(tmp_path):
    clip = levels_clip(tmp_path / "clip.mp4", [100, 140, 180, 220], FPS)  # a third of a second
    p = planned([{"type": "video", "source": clip, "width": 0.25, "height": 0.25, "fit": "stretch", "start": 0.25}])
    layer = p.layers[0]
    assert (layer.start, layer.end, layer.kind.shape) == (3, 24, (45, 80))
    assert p.layer_sources == (clip,)

    def shown(first, last):
        reel = layer.kind.reel(layer, 0, range(first, last))
        return [reel.at(k)[0] for k in range(max(first, layer.start), last)]

    whole = shown(0, 24)
    assert all(np.array_equal(a, b) for a, b in zip(whole, shown(0, 7) + shown(7, 13) + shown(13, 24), strict=True))
    # Frame k shows the clip at (k - 3) / 12 s: its four frames, then its last, held.
    levels = [round(float(rgb.mean())) for rgb in whole]
    assert np.abs(np.array(levels) - np.array([100, 140, 180, 220] + [220] * 17)).max() <= 3, levels


@pytest.mark.unit
def test_a_video_layer_is_keyed_by_its_clips_content_and_staged_as_a_segments_clip_is(tmp_path):
    clip = levels_clip(tmp_path / "clip.mp4", [100, 140, 180, 220])
    card = {"source": "color:#ffffff", "duration": 1.0}

    def keyed(before: int):
        """The plan, and the key of its last segment, with `before` segments ahead of it."""
        segments = [{"source": "color:#000000", "duration": 0.5}] * before + [card]
        p = planned([{"type": "video", "source": clip, "segment": before, "start": 0.25, "width": 0.5}], segments)
        return p, segment_keys(p, {u: u for u in p.sources}, {u: "detected" for u in p.sources}, 0.5)[before]

    p, unchanged = keyed(1)
    assert keyed(2)[1] == unchanged  # half a second later in the video, the same frames
    assert clip in local_inputs(p)  # copied into the run's storage for Ray's nodes
    levels_clip(tmp_path / "clip.mp4", [100, 140, 180, 221])  # the same clip, one frame other
    assert keyed(1)[1] != unchanged


# ---- render: placement on decoded frames --------------------------------------------------


@pytest.mark.render
def test_a_text_layer_is_drawn_inside_its_anchored_box_only_between_its_start_and_end(tmp_path):
    frames, p = rendered(tmp_path, [{"type": "text", "text": "$1,250,000", "position": "top_right",
                                     "start": 0.5, "length": 1.0}])
    layer = p.layers[0]
    assert (layer.start, layer.end) == (6, 18)
    h, w = layer.kind.shape
    x, y = origin("top_right", (h, w), W, H, 0.05)
    ink = drawn(frames)
    assert not ink[:6].any() and not ink[18:].any()  # nothing before its start, nothing from its end
    for k in range(6, 18):
        ys, xs = np.nonzero(ink[k])
        assert len(xs) > 100, k  # the text is there
        # Inside its box, give or take the pixel that 4:2:0 chroma smears an edge over.
        assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h, (k, x, y, w, h)


@pytest.mark.render
def test_a_video_layer_plays_inside_its_anchored_box_only_between_its_start_and_end(tmp_path):
    """A 0.4 s clip of four greys in a quarter of a 96x54 card at 10 fps, top left, from 0.2 s
    for 0.6 s, rendered in tasks of at most 3 frames: each frame shows the clip at its time, the
    last frame held; nothing before or after, nothing outside its box."""
    clip = levels_clip(tmp_path / "clip.mp4", [100, 140, 180, 220])
    cfg = config(job([{"type": "video", "source": clip, "width": 0.5, "height": 0.5, "fit": "stretch",
                       "position": "top_left", "start": 0.2, "length": 0.6}],
                     [{"source": "color:#203040", "duration": 1.0}], output=str(tmp_path / "video.mp4")),
                 ["render.width=96", "render.height=54", "render.fps=10", "render.max_frames_per_task=3",
                  "detector=saliency", "job.audio.path=null"])
    result = render(cfg, str(tmp_path / "run"), quiet=True)
    frames = ffmpeg_decode(tmp_path / "video.mp4", 96, 54)
    layer = result.plan.layers[0]
    assert (layer.start, layer.end, layer.kind.shape) == (2, 8, (27, 48))
    x, y = origin("top_left", (27, 48), 96, 54, 0.05)
    ink = drawn(frames)
    assert frames.shape[0] == 10 and not ink[:2].any() and not ink[8:].any()
    for k in range(2, 8):
        ys, xs = np.nonzero(ink[k])
        assert xs.min() >= x - 1 and xs.max() <= x + 48 and ys.min() >= y - 1 and ys.max() <= y + 27, k
    inside = frames[2:8, y + 2:y + 25, x + 2:x + 46].astype(int)
    levels = inside.mean(axis=(1, 2, 3))
    assert np.abs(levels - [100, 140, 180, 220, 220, 220]).max() <= 6, levels
    # Flat (the clip's frame, not a blend of two), but for the few pixels H.264 rings at the box's edge.
    assert np.percentile(np.abs(inside - levels[:, None, None, None]), 99) <= 6


@pytest.mark.render
def test_a_logo_keeps_its_alpha(tmp_path):
    """A 200x100 logo: opaque yellow, a transparent hole in the middle, a half-transparent strip on
    the left. Fitted into half the frame (160x80), centred on the card."""
    logo = np.zeros((100, 200, 4), np.uint8)
    logo[:, :, :3], logo[:, :, 3] = (255, 200, 0), 255
    logo[25:75, 50:150, 3] = 0
    logo[:, :20, 3] = 128
    cv2.imwrite(str(tmp_path / "logo.png"), cv2.cvtColor(logo, cv2.COLOR_RGBA2BGRA))
    frames, p = rendered(tmp_path, [{"type": "image", "source": str(tmp_path / "logo.png"), "width": 0.5,
                                     "height": 0.5}])
    assert p.layers[0].kind.shape == (80, 160)
    x, y = (W - 160) // 2, (H - 80) // 2
    frame = frames[12].astype(int)
    hole = frame[y + 30:y + 50, x + 50:x + 110]  # the hole is 80x40 at (40, 20) of the fitted logo
    opaque = frame[y + 5:y + 15, x + 30:x + 150]
    strip = frame[y + 5:y + 75, x + 3:x + 13]  # the strip is 16 px wide
    assert np.abs(hole - CARD).max() <= 3, hole.mean(axis=(0, 1))
    assert np.abs(opaque - (255, 200, 0)).max() <= 4, opaque.mean(axis=(0, 1))
    half = (np.array((255, 200, 0)) * 128 + np.array(CARD) * 127) / 255
    assert np.abs(strip.mean(axis=(0, 1)) - half).max() <= 3, (strip.mean(axis=(0, 1)), half)


@pytest.mark.render
def test_a_slide_in_moves_monotonically_and_comes_to_rest_at_its_anchor(tmp_path):
    frames, p = rendered(tmp_path, [{"type": "box", "color": "white", "width": 0.25, "height": 0.2,
                                     "in": {"type": "slide_left", "duration": 1.0}}])
    h, w = p.layers[0].kind.shape
    x, y = origin("center", (h, w), W, H, 0.05)
    row = frames[:, y + h // 2].astype(int).max(axis=-1) > 128  # the box's middle row, white where it is
    lefts = [int(np.argmax(r)) if r.any() else W for r in row]
    assert all(a >= b for a, b in zip(lefts, lefts[1:])), lefts  # only ever leftward
    assert lefts[0] > x + 40 and lefts[11] - x <= 1 and set(lefts[12:]) == {x}, lefts
    inside = frames[12:, y + 2:y + h - 2, x + 2:x + w - 2].astype(int)
    assert np.abs(inside - 255).max() <= 3  # the box, opaque, its colour


def layered_job_file(tmp_path, layers, text=None, position="auto"):
    segment = {"source": "sample:astronaut", "duration": 1.0, "effect": "static"}
    if text:
        segment["caption"] = {"text": text, "box": True, "position": position}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"job": {"name": "faces", "segments": [segment], "layers": layers}}))
    return str(path)


FACE_WIDE = "An explicit caption over the face of the astronaut, long enough to cover it at any size at all " * 2


@pytest.mark.render
def test_an_explicit_position_over_a_face_is_drawn_there_with_one_warning_line(tmp_path):
    output = tmp_path / "video.mp4"
    proc = run_cli(layered_job_file(tmp_path, [{"type": "box", "width": 0.5, "height": 0.5, "opacity": 0.5}],
                                    FACE_WIDE, "top"),
                   *SMALL[:4], f"job.output={output}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "covers a face" in line]
    assert len(warnings) == 2, proc.stdout + proc.stderr
    assert any("job.segments[0].caption: at position top it covers a face in segment 0; position: auto keeps "
               "it clear" in line for line in warnings)
    assert any("job.layers[0]: at position center it covers a face in segment 0" in line for line in warnings)
    assert output.is_file()


@pytest.mark.render
def test_a_layer_that_avoids_the_subject_and_cannot_stops_the_render_naming_it(tmp_path):
    output = tmp_path / "video.mp4"
    proc = run_cli(layered_job_file(tmp_path, [{"type": "box"},
                                               {"type": "box", "width": 0.5, "height": 0.5, "avoid": "subject"}]),
                   *SMALL[:4], f"job.output={output}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: job.layers[1]: cannot keep clear of the subject and the faces of segment 0 at position center; "
        "make it smaller, choose another position, or drop avoid"]
    assert not output.exists()


@pytest.mark.render
def test_the_layers_command_lists_every_type_animation_and_anchor_with_their_keys():
    out = run_cli(command="layers").stdout
    sections = {}
    for line in out.splitlines():
        if line and not line.startswith(" "):
            section = sections.setdefault(line.split(":")[0], {})
        elif line.startswith("  ") and not line.startswith("    "):
            item = section.setdefault(line.split(":")[0].strip(), [])
        elif line.strip():
            item.append(line.split(":")[0].strip())
    assert sections["layers"] == {
        "text": ["text", "font", "size", "color", "outline", "outline_color", "box", "box_color", "box_opacity",
                 "align", "width"],
        "image": ["source", "mask", "width", "height", "radius"],
        "box": ["color", "width", "height", "radius"],
        "video": ["source", "cut_from", "cut_to", "speed", "fit", "width", "height"],
        "every": ["start", "length", "segment", "position", "offset", "margin", "opacity", "avoid", "in", "out"]}
    assert list(sections["animations"]) == [*ANIMATIONS, "in_or_out"]
    assert list(sections["anchors"]) == list(ANCHORS)


@pytest.mark.render
def test_a_rows_layer_image_is_read_only_from_inside_the_batchs_roots(tmp_path):
    """A row's own job may add layers: an image it names outside batch.allowed_roots fails its
    row, as a photo there does; one beside the rows is read from the rows' folder."""
    import json

    import raypipe

    rows_dir, secret = tmp_path / "rows", tmp_path / "secret.png"
    rows_dir.mkdir()
    for path in (secret, rows_dir / "a.png", rows_dir / "logo.png"):
        cv2.imwrite(str(path), np.full((20, 40, 3), 200, np.uint8))
    rows = [{"id": "evil", "address": "x", "price": "y", "photos": ["a.png"],
             "job": {"layers": [{"type": "image", "source": str(secret)}]}},
            {"id": "ok", "address": "x", "price": "y", "photos": ["a.png"],
             "job": {"layers": [{"type": "image", "source": "logo.png"}]}}]
    table = rows_dir / "rows.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = raypipe.render_batch("listing", table, ["render.width=160", "render.height=90", "render.fps=10",
                                                     "batch.each.duration=0.6", "detector=saliency",
                                                     f"batch.root={tmp_path / 'out'}"], run_dir=tmp_path / "r")
    by_id = {r.id: r for r in report.records}
    assert by_id["ok"].status == "done", by_id["ok"].error
    assert by_id["evil"].status == "failed" and "job.layers[0].source" in by_id["evil"].error
    assert "outside batch.allowed_roots" in by_id["evil"].error


@pytest.mark.unit
def test_a_segment_moved_along_the_timeline_keeps_its_layers_key_and_an_edited_image_changes_it(tmp_path):
    logo = tmp_path / "logo.png"
    cv2.imwrite(str(logo), np.full((10, 20, 3), 90, np.uint8))
    card = {"source": "color:#ffffff", "duration": 1.0}

    def key(before: int):
        """The key of the last segment, with `before` segments ahead of it."""
        segments = [{"source": "color:#000000", "duration": 0.5}] * before + [card]
        p = planned([{"type": "image", "source": str(logo), "segment": before, "start": 0.25}], segments)
        return segment_keys(p, {u: u for u in p.sources}, {u: "detected" for u in p.sources}, 0.5)[before]

    assert key(1) == key(2)  # half a second later in the video, the same frames
    unchanged = key(1)
    cv2.imwrite(str(logo), np.full((10, 20, 3), 91, np.uint8))  # the same size, other pixels
    assert key(1) != unchanged


@pytest.mark.unit
def test_a_job_files_layers_read_their_images_and_fonts_from_its_folder(tmp_path):
    (tmp_path / "brand").mkdir()
    cv2.imwrite(str(tmp_path / "brand" / "logo.png"), np.full((10, 20, 3), 90, np.uint8))
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"name": "files", "segments": [{"source": "color:#000000", "duration": 1.0}],
                                    "layers": [{"type": "image", "source": "brand/logo.png"},
                                               {"type": "text", "text": "x", "font": "DejaVu Sans"}]}))
    cfg = config(str(path))
    assert cfg.job.layers[0].source == str(tmp_path / "brand" / "logo.png")
    assert cfg.job.layers[1].font == "DejaVu Sans"  # a family name, for fontconfig


@pytest.mark.unit
def test_a_layer_over_several_faces_says_so_in_one_line_naming_its_segments_and_in_a_batch_its_row(caplog):
    from raypipe.engine.driver import detect
    from raypipe.engine.task import check_caption
    from raypipe.plan.layers import told_as

    face = {"source": "sample:astronaut", "duration": 0.5}
    cfg = config(job([{"type": "box", "width": 0.9, "height": 0.9, "opacity": 0.5}],
                     [face, {"source": "color:#203040", "duration": 0.5}, face, face]), SMALL)
    p = plan(cfg.job, cfg.render)
    detections, _ = detect(cfg.detector, p, None)
    for seg in reversed(p.segments):  # placed in any order, as a streamed render's detections come in
        check_caption(seg, detections, p.encode)
    warnings = [r.getMessage() for r in caplog.records if "covers a face" in r.getMessage()]
    assert warnings == ["job.layers[0]: at position center it covers a face in segments 0, 2, 3; position: auto "
                        "or avoid: subject keeps it clear"]
    caplog.clear()
    p = told_as(plan(cfg.job, cfg.render), "row 2 (id oak) variant tall: {}".format)
    for seg in p.segments:
        check_caption(seg, detections, p.encode)
    assert [r.getMessage() for r in caplog.records if "covers a face" in r.getMessage()] == [
        "row 2 (id oak) variant tall: " + warnings[0]]


@pytest.mark.render
def test_a_caption_with_a_layers_keys_is_drawn_as_the_equivalent_text_layer(tmp_path):
    """A segment's caption is a text layer bound to its segment: the same keys (an anchor of
    the nine, offset, in and out) draw the same pixels, frame by frame."""
    keys = {"text": "Open house", "position": "left", "offset": [0.1, 0.15], "align": "left"}
    card = {"source": "color:#203040", "duration": 2.0}
    captioned, _ = rendered(tmp_path, [], [{**card, "caption": {**keys, "in": {"type": "fade", "duration": 0.5},
                                                                "out": {"type": "slide_down", "duration": 0.5}}}],
                            tag="caption")
    layered, _ = rendered(tmp_path, [{"type": "text", **keys, "segment": 0, "in": {"type": "fade", "duration": 0.5},
                                      "out": {"type": "slide_down", "duration": 0.5}}], [card], tag="layer")
    assert drawn(captioned).sum() > 1000  # it is there: white text on the card
    assert np.abs(captioned.astype(int) - layered).max() <= 2
    on = drawn(captioned).sum(axis=(1, 2))
    assert on[0] < on[6] / 4 and on[-1] < on[12]  # fading in over its first 0.5 s, sliding out at its end


@pytest.mark.unit
@pytest.mark.parametrize("caption,where", [
    ({"align": "justify"}, "job.segments[0].caption.align"),
    ({"in": {"type": "spin"}}, "job.segments[0].caption.in.type"),
    ({"out": {"duration": -1.0}}, "job.segments[0].caption.out.duration"),
    ({"opacity": 2.0}, "job.segments[0].caption.opacity"),
    ({"offset": [0.1]}, "job.segments[0].caption.offset"),
    ({"position": "middle"}, "job.segments[0].caption.position"),
])
def test_a_captions_layer_keys_are_checked_as_a_layers_are(caption, where):
    segment = {"source": "color:#203040", "duration": 1.0, "caption": {"text": "x", **caption}}
    with pytest.raises(JobError) as e:
        planned([], [segment])
    assert e.value.where == where


@pytest.mark.unit
def test_a_caption_takes_the_nine_anchors_and_a_layers_motion():
    segment = {"source": "color:#203040", "duration": 1.0,
               "caption": {"text": "x", "position": "right", "opacity": 0.5, "in": {"type": "zoom", "duration": 0.2}}}
    caption, = planned([], [segment]).segments[0].layers
    assert (caption.position, caption.opacity, caption.enter, caption.leave) == (
        "right", 0.5, Motion("zoom", 0.2), Motion("fade", 0.3))


@pytest.mark.unit
def test_a_layer_cut_short_by_the_videos_end_has_its_in_and_out_shortened_with_one_warning(caplog):
    # 4 s of card; the text asks for 3.5 s..5.5 s and gets 0.5 s, less than its 0.9 s of in and out
    layer = {"type": "text", "text": "A", "start": 3.5, "length": 2, "in": {"type": "fade", "duration": 0.5},
             "out": {"type": "fade", "duration": 0.4}}
    p = planned([layer], [{"source": "color:#203040", "duration": 4.0}])
    (text,) = p.layers
    assert (text.start, text.end) == (42, 48)
    assert text.enter.seconds == pytest.approx(0.5 * 0.5 / 0.9) and text.leave.seconds == pytest.approx(0.4 * 0.5 / 0.9)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1 and said[0].startswith("job.layers[0]: on for 0.50 s to the end"), said
    # Its own length too short for them still fails, naming it.
    with pytest.raises(JobError) as e:
        planned([{**layer, "start": 0.0, "length": 0.5}], [{"source": "color:#203040", "duration": 4.0}])
    assert e.value.where == "job.layers[0].in"


@pytest.mark.unit
def test_a_layer_moved_wholly_outside_the_frame_says_so_in_one_line(caplog):
    box = {"type": "box", "width": 0.2, "height": 0.2}
    planned([{**box, "offset": [0.5, 0.0]}, {**box, "position": "top", "offset": [0.0, 0.2]}])  # partly inside
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    planned([box, {**box, "position": "right", "offset": [0.3, 0.0]}, {**box, "offset": [0.0, -0.7]}])
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [s.split(":")[0] for s in said] == ["job.layers[1]", "job.layers[2]"], said
    assert "outside the 320x180 frame" in said[0]
