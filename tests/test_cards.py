"""Cards: segments made from a colour or a gradient, with no file."""
import numpy as np
import pytest

from conftest import compose_job, render
from media_inputs import ffmpeg_decode
from raypipe.errors import JobError, MediaError
from raypipe.media import cards, load_image
from raypipe.plan.timeline import plan


@pytest.mark.unit
def test_a_card_is_exact_colours_at_the_size_the_planner_gives_it():
    flat = load_image(cards.sized("color:#1A2B3C", 64, 36))
    assert flat.shape == (36, 64, 3) and (flat == (0x1A, 0x2B, 0x3C)).all()
    down = load_image(cards.sized("gradient:#000000,#ffffff", 40, 100))  # CSS's default: top to bottom
    assert (np.diff(down[:, 0, 0].astype(int)) >= 0).all() and down[0, 0, 0] < 3 and down[-1, 0, 0] > 252
    assert (down == down[:, :1]).all()  # each row one colour
    right = load_image(cards.sized("gradient:#ff0000,#0000ff,90", 100, 10))
    assert right[0, 0, 0] > 250 and right[0, -1, 2] > 250 and (np.diff(right[0, :, 2].astype(int)) >= 0).all()


@pytest.mark.unit
def test_a_radial_card_runs_from_its_first_colour_at_the_centre_to_its_second_at_the_radius():
    out = load_image(cards.sized("radial:#ffffff,#000000,0.25", 200, 100))  # radius 50 px
    middle = out[50].astype(int)[:, 0]
    assert middle[99] > 250 and middle[100] > 250  # the centre
    assert (np.diff(middle[100:]) <= 0).all() and (middle[150:] == 0).all()  # dark from the radius out
    assert middle[125] == pytest.approx(127, abs=3)  # halfway
    assert (out[:, ::-1] == out).all() and (out[::-1] == out).all()  # symmetric about the centre
    corners = load_image(cards.sized("radial:#ffffff,#000000", 200, 100))  # no radius: to the corners
    assert corners[0, 0, 0] <= 3 and corners[0, 100, 0] > 100  # a pixel's centre lies just inside the corner


@pytest.mark.unit
def test_a_card_keeps_one_spelling_and_a_bad_one_is_named():
    assert cards.sized("gradient:#AABBCC, #001122 ,45.0", 8, 8) == "gradient:#aabbcc,#001122,45@8x8"
    assert cards.sized("radial:#AABBCC,#001122, 0.50", 8, 8) == "radial:#aabbcc,#001122,0.5@8x8"
    for bad in ("color:red", "color:#12345", "gradient:#123456", "gradient:#123456,#654321,up", "radial:#123456",
                "radial:#123456,#654321,wide", "radial:#123456,#654321,-1"):
        with pytest.raises(MediaError, match="card|angle|radius"):
            cards.parse(bad)


@pytest.mark.unit
def test_a_job_with_a_bad_card_fails_naming_the_segment_source():
    cfg = compose_job()
    cfg.job.segments[1].source = "gradient:#123456"
    with pytest.raises(JobError, match=r"^job\.segments\[1\]\.source: 'gradient:#123456' is not a card: write "
                                       r"gradient:#RRGGBB,#RRGGBB\[,angle\]$"):
        plan(cfg.job, cfg.render)


@pytest.mark.render
def test_a_rendered_card_is_its_colour_on_decoded_frames(tmp_path):
    """A flat card between two photos, through the whole engine (detection included, where a
    card is subject-less and loads no model): every pixel of its frames is its colour, within
    what 4:2:0 H.264 at CRF 18 moves a flat colour (measured: at most 2 levels)."""
    cfg = compose_job("detector=saliency", "render.width=320", "render.height=180", "render.fps=12",
                      f"job.output={tmp_path / 'cards.mp4'}")
    first, card = cfg.job.segments[0], cfg.job.segments[4]
    first.effect, first.params, first.duration, first.transition.type = "static", {}, 1.0, "cut"
    card.source, card.duration, card.effect = "color:#2a6fdb", 1.0, "ken_burns"
    cfg.job.segments = [first, card]
    cfg.job.audio.path = None
    report = render(cfg, tmp_path / "run", quiet=True)
    frames = ffmpeg_decode(tmp_path / "cards.mp4", 320, 180)
    assert len(frames) == 24 and report["frames"] == 24
    card = frames[12:].astype(int)
    error = np.abs(card - np.array([0x2A, 0x6F, 0xDB])).max()
    assert error <= 2, error
