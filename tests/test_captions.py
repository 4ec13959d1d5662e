"""Captions: real fonts, any script the installed fonts cover, placed away from the subject."""
import numpy as np
import pytest

from raypipe.frames.captions import CaptionError, CaptionStyle, font_runs, layout, overlay, resolve_font


def style(text, **kw):
    base = dict(text=text, font="DejaVu Sans", size=0.08, color="white", outline=0.08, outline_color="black",
                box=False, box_color="black", box_opacity=0.5, position="auto", margin=0.05, fade_in=0.3, fade_out=0.3)
    return CaptionStyle(**{**base, **kw})


def ink(caption):
    return int((caption.rgba[:, :, 3] > 128).sum())


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


def test_a_character_the_font_lacks_comes_from_an_installed_font_that_has_it():
    runs = font_runs("A𝐀A", resolve_font("DejaVu Sans"))
    assert [r for r, _ in runs] == ["A", "𝐀", "A"]
    assert runs[1][1] != runs[0][1] and runs[0][1] == runs[2][1]
    cap = layout(style("𝐀"), 640, 360)
    assert ink(cap) > 100


def test_a_character_no_installed_font_has_is_an_error_not_a_box():
    with pytest.raises(CaptionError, match=r"no installed font has a glyph for U\+E000"):
        layout(style("private \ue000 use"), 640, 360)


def test_missing_fonts_are_named():
    with pytest.raises(CaptionError, match="no installed font named 'No Such Font'"):
        resolve_font("No Such Font")
    with pytest.raises(CaptionError, match="no font file at /no/font.ttf"):
        resolve_font("/no/font.ttf")


def test_long_text_wraps_inside_the_frame():
    cap = layout(style("a caption long enough that it cannot possibly fit on one line of a small frame"), 320, 180)
    assert cap.rgba.shape[1] <= 320 and cap.rgba.shape[0] > 2 * 0.08 * 180


def test_auto_placement_keeps_clear_of_the_subject():
    cap = layout(style("Caption"), 640, 360)
    w, h = cap.rgba.shape[1], cap.rgba.shape[0]
    for subject, expect in (((200, 200, 440, 360), "top"), ((200, 0, 440, 200), "bottom")):
        x, y = cap.place([subject], 640, 360)
        assert y + h <= subject[1] or y >= subject[3], (subject, y)
        assert (y < 180) == (expect == "top")
    assert cap.place([(200, 0, 440, 360)], 640, 360)[0] + w <= 200 or cap.place([(200, 0, 440, 360)], 640, 360)[0] >= 440


def test_given_position_wins_and_fades_are_linear():
    cap = layout(style("Caption", position="top_left"), 640, 360)
    assert cap.place([(0, 0, 640, 360)], 640, 360) == (18, 18)
    assert cap.opacity(0.0, 2.0) == 0.0 and cap.opacity(0.15, 2.0) == pytest.approx(0.5)
    assert cap.opacity(1.0, 2.0) == 1.0 and cap.opacity(1.85, 2.0) == pytest.approx(0.5)


def test_overlay_draws_at_its_opacity_and_clips_to_the_frame():
    cap = layout(style("Caption", box=True, box_opacity=1.0, box_color="red"), 640, 360)
    frame = np.zeros((360, 640, 3), np.uint8)
    full = overlay(frame, cap, (10, 10), 1.0)
    half = overlay(frame, cap, (10, 10), 0.5)
    assert full[12, 12 + cap.rgba.shape[1] // 2, 0] >= 250 or full[10:, 10:].max() == 255
    assert 100 < half[10:10 + cap.rgba.shape[0], 10:10 + cap.rgba.shape[1]].max() <= 130
    clipped = overlay(frame, cap, (600, 340), 1.0)
    assert clipped.shape == frame.shape and clipped[340:, 600:].max() > 0
    assert overlay(frame, cap, (10, 10), 0.0) is frame
