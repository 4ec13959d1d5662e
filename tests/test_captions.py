"""Captions: real fonts, any script the installed fonts cover, placed away from the subject."""
import numpy as np
import pytest

from conftest import compose_job, render, render_error, with_test_conf
from media_inputs import ffmpeg_decode
from raypipe.detection.faces import find_faces
from raypipe.frames.captions import POSITIONS, CaptionError, CaptionStyle, font_runs, layout, overlay, resolve_font


def style(text, **kw):
    base = dict(text=text, font="DejaVu Sans", size=0.08, color="white", outline=0.08, outline_color="black",
                box=False, box_color="black", box_opacity=0.5, position="auto", margin=0.05, fade_in=0.3, fade_out=0.3)
    return CaptionStyle(**{**base, **kw})


def ink(caption):
    return int((caption.rgba[:, :, 3] > 128).sum())


@pytest.mark.unit
def test_text_in_several_scripts_renders_with_real_glyphs():
    latin = layout(style("Hello"), 640, 360)
    assert latin.rgba.shape[2] == 4 and ink(latin) > 300
    for text in ("Ελληνικά", "Кириллица", "العربية", "עברית"):
        cap = layout(style(text), 640, 360)
        assert ink(cap) > 200, text
    # Arabic is shaped: joined letters differ from the same letters drawn one by one.
    joined = layout(style("عرب"), 640, 360)
    apart = layout(style("ع ر ب"), 640, 360)
    assert joined.rgba.shape[1] < apart.rgba.shape[1]


@pytest.mark.unit
def test_text_is_sized_by_the_frames_shorter_side_so_it_keeps_its_proportions_in_every_aspect():
    from raypipe.frames.captions import block

    wide, tall, square = (block(style("12 Elm Street", box=True), w, h, w) for w, h in ((640, 360), (360, 640),
                                                                                       (360, 360)))
    assert wide.shape == tall.shape == square.shape  # one line, as high in 9:16 as in 16:9
    assert layout(style("Hi"), 360, 640).rgba.shape == layout(style("Hi"), 640, 360).rgba.shape


@pytest.mark.unit
def test_a_character_the_font_lacks_comes_from_an_installed_font_that_has_it():
    runs = font_runs("A𝐀A", resolve_font("DejaVu Sans"))
    assert [r for r, _ in runs] == ["A", "𝐀", "A"]
    assert runs[1][1] != runs[0][1] and runs[0][1] == runs[2][1]
    cap = layout(style("𝐀"), 640, 360)
    assert ink(cap) > 100


@pytest.mark.unit
def test_a_character_no_installed_font_has_is_an_error_not_a_box():
    with pytest.raises(CaptionError, match=r"no installed font has a glyph for U\+E000"):
        layout(style("private \ue000 use"), 640, 360)


@pytest.mark.unit
def test_missing_fonts_are_named():
    with pytest.raises(CaptionError, match="no installed font named 'No Such Font'"):
        resolve_font("No Such Font")
    with pytest.raises(CaptionError, match="no font file at /no/font.ttf"):
        resolve_font("/no/font.ttf")


@pytest.mark.unit
def test_long_text_wraps_inside_the_frame():
    cap = layout(style("a caption long enough that it cannot possibly fit on one line of a small frame"), 320, 180)
    assert cap.rgba.shape[1] <= 320 and cap.rgba.shape[0] > 2 * 0.08 * 180


@pytest.mark.unit
def test_auto_placement_keeps_clear_of_the_subject():
    cap = layout(style("Caption"), 640, 360)
    w, h = cap.rgba.shape[1], cap.rgba.shape[0]
    for subject, expect in (((200, 200, 440, 360), "top"), ((200, 0, 440, 200), "bottom")):
        chosen, (x, y) = cap.place([subject], 640, 360)
        assert chosen == 0  # no face in the way: the caption keeps its size and width
        assert y + h <= subject[1] or y >= subject[3], (subject, y)
        assert (y < 180) == (expect == "top")
    _, (x, _) = cap.place([(200, 0, 440, 360)], 640, 360)
    assert x + w <= 200 or x >= 440


@pytest.mark.unit
def test_given_position_wins_and_fades_are_linear():
    cap = layout(style("Caption", position="top_left"), 640, 360)
    assert cap.place([(0, 0, 640, 360)], 640, 360)[1] == (18, 18)
    assert cap.opacity(0.0, 2.0) == 0.0 and cap.opacity(0.15, 2.0) == pytest.approx(0.5)
    assert cap.opacity(1.0, 2.0) == 1.0 and cap.opacity(1.85, 2.0) == pytest.approx(0.5)


@pytest.mark.unit
def test_overlay_draws_at_its_opacity_and_clips_to_the_frame():
    cap = layout(style("Caption", box=True, box_opacity=1.0, box_color="red"), 640, 360)
    frame = np.zeros((360, 640, 3), np.uint8)
    rgba = cap.rgba
    full = overlay(frame, rgba, (10, 10), 1.0)
    half = overlay(frame, rgba, (10, 10), 0.5)
    assert full[12, 12 + cap.rgba.shape[1] // 2, 0] >= 250 or full[10:, 10:].max() == 255
    assert 100 < half[10:10 + cap.rgba.shape[0], 10:10 + cap.rgba.shape[1]].max() <= 130
    clipped = overlay(frame, rgba, (600, 340), 1.0)
    assert clipped.shape == frame.shape and clipped[340:, 600:].max() > 0
    assert overlay(frame, rgba, (10, 10), 0.0) is frame


FEW_SENTENCES = ("The first crewed flight of the new capsule lifted off at dawn. "
                 "She trained for six years before this mission. "
                 "Tonight the crew will dock with the station and begin two weeks of experiments.")


def inside(rect, w, h, margin):
    x0, y0, x1, y1 = rect
    return margin <= x0 and margin <= y0 and x1 <= w - margin and y1 <= h - margin


@pytest.mark.slow
@pytest.mark.parametrize("position", POSITIONS)
def test_a_caption_never_leaves_the_frame_at_any_position(position):
    for text in ("Caption", FEW_SENTENCES):
        for w, h in ((320, 180), (180, 320), (640, 360)):
            cap = layout(style(text, position=position, box=True), w, h)
            chosen, (x, y) = cap.place([], w, h)
            ph, pw = cap.bitmap(chosen).shape[:2]
            assert inside((x, y, x + pw, y + ph), w, h, round(0.05 * h)), (text[:20], w, h, position)
    # At 20% of the frame height (36 px) the sentences would be taller than the frame: shrunk to fit.
    tall = layout(style(FEW_SENTENCES, size=0.2, position=position), 320, 180)
    assert tall.text_px[0] < 36 and all(h <= 180 - 2 * 9 and w <= 320 - 2 * 9 for h, w in tall.shapes)


@pytest.mark.unit
def test_a_caption_too_long_for_the_frame_at_the_smallest_size_is_an_error():
    with pytest.raises(CaptionError, match=r"^its 2000 characters do not fit in the 320x180 frame even at 14 px text; "
                                           r"shorten the text or lower size or margin$"):
        layout(style(("x" * 9 + " ") * 200), 320, 180)


@pytest.mark.unit
def test_a_caption_shrinks_to_keep_clear_of_a_face():
    cap = layout(style(FEW_SENTENCES, box=True), 640, 360)
    face = (150, 0, 490, 230)  # the full-size caption is too tall for the 112 px under it
    assert cap.rgba.shape[0] > 360 - 18 - 230
    chosen, (x, y) = cap.place([(100, 0, 540, 360)], 640, 360, [face])
    ph, pw = cap.shapes[chosen]
    assert cap.text_px[chosen] < cap.text_px[0] and y >= 230 and inside((x, y, x + pw, y + ph), 640, 360, 18)
    # The same caption fixed at the top stays there, and shrinking cannot clear the face: the position is the
    # user's choice, so it is drawn there at its own size (the render warns that it covers the face).
    top = layout(style(FEW_SENTENCES, box=True, position="top"), 640, 360)
    assert top.place([], 640, 360, [face]) == (0, top.origins(640, 360)["top"])
    # A face nowhere near: the caption keeps its size.
    assert cap.place([], 640, 360, [(600, 0, 640, 40)])[0] == 0


@pytest.mark.unit
def test_a_caption_beside_a_face_keeps_its_size_in_a_narrower_column():
    """The demo's first shot: ken_burns brings the astronaut's face (as framing keeps it
    whole) to fill the frame's height between x 388 and 873 of 1280."""
    text = "raypipe: effects that know where the subject is"
    cap = layout(style(text, size=0.05), 1280, 720)
    chosen, (x, y) = cap.place([(93, 222, 1491, 1617)], 1280, 720, [(388, 35, 873, 654)])
    h, w = cap.shapes[chosen]
    assert cap.text_px[chosen] == cap.text_px[0] == 36 and w < cap.shapes[0][1] / 2
    assert x + w <= 388 and inside((x, y, x + w, y + h), 1280, 720, 36)


def one_astronaut(tmp_path, tag, width, height, text=None):
    cfg = compose_job("detector=saliency", f"render.width={width}", f"render.height={height}", "render.fps=12",
                      f"job.output={tmp_path / tag}.mp4")
    seg = cfg.job.segments[0]
    seg.effect, seg.params, seg.duration, seg.transition.type = "static", {}, 1.0, "cut"
    if text:
        seg.caption.text, seg.caption.box = text, True
    cfg.job.segments, cfg.job.audio.path = [seg], None
    return cfg


@pytest.mark.render
def test_a_rendered_caption_keeps_clear_of_the_face_found_on_the_output(tmp_path):
    """A caption of a few sentences at auto with a box over the astronaut: at its own size
    it covered 61% of her face at 640x360 (at the top); it is drawn smaller, under the face."""
    w, h = 640, 360
    frames = {}
    for tag, text in (("plain", None), ("captioned", FEW_SENTENCES)):
        render(one_astronaut(tmp_path, tag, w, h, text), str(tmp_path / f"run-{tag}"), quiet=True)
        frames[tag] = ffmpeg_decode(tmp_path / f"{tag}.mp4", w, h)
    k = len(frames["plain"]) // 2  # faded fully in
    faces = find_faces(frames["plain"][k])
    assert len(faces) == 1
    drawn = np.abs(frames["captioned"][k].astype(int) - frames["plain"][k].astype(int)).max(axis=2) > 40
    ys, xs = np.nonzero(drawn)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    fx0, fy0, fx1, fy1 = faces[0]
    assert box[0] >= fx1 or box[2] <= fx0 or box[1] >= fy1 or box[3] <= fy0, (box, faces)
    full = layout(style(FEW_SENTENCES, size=0.06, box=True), w, h).rgba
    assert box[3] - box[1] < full.shape[0] - 20  # shrunk, not just moved


@pytest.mark.render
def test_a_caption_that_cannot_clear_the_face_stops_the_render_before_any_segment(tmp_path, caplog):
    output = tmp_path / "video.mp4"
    line = render_error(caplog, "fixture", with_test_conf(
        "detector=saliency", "render.width=480", "render.height=270", f"job.segments.0.caption.text='{FEW_SENTENCES}'",
        "job.segments.0.caption.box=true", f"job.output={output}"), tmp_path / "run")
    assert line == (
        "job.segments[0].caption: its 189 characters cannot keep clear of the face in the shot, even at 14 px "
        "text at any position; shorten the text or lower size")
    assert "segment 0" not in caplog.text and not list(tmp_path.rglob("*.mp4"))
    assert not list(tmp_path.rglob("report.json"))


@pytest.mark.render
def test_a_caption_of_2000_characters_stops_the_render_with_its_segment_and_length(tmp_path, caplog):
    output = tmp_path / "video.mp4"
    line = render_error(caplog, "fixture", with_test_conf(
        "detector=saliency", f"job.segments.3.caption.text='{('x' * 9 + ' ') * 200}'", f"job.output={output}"),
        tmp_path / "run")
    assert line == (
        # The fixture's 6% of 180 px is under the 14 px floor: the size the user set is the smallest tried.
        "job.segments[3].caption: its 2000 characters do not fit in the 320x180 frame even at 11 px text; "
        "shorten the text or lower size or margin")
    assert not list(tmp_path.rglob("*.mp4")) and not list(tmp_path.rglob("report.json"))
