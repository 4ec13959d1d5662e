"""Sources as people have them (issue 8): rotated phone video, EXIF-rotated and odd stills,
anamorphic, variable-frame-rate, 10-bit and HDR clips, and broken files.

Every input is generated here (tests/media_inputs.py) with a known picture, and every test
checks decoded pixels with numbers. Where ffmpeg itself has an opinion (autorotation), its
own decode is the reference; elsewhere the expected picture is computed with numpy.
"""
import tempfile

import numpy as np
import pytest

import media_inputs as mi
from conftest import run_cli
from raypipe.media import (
    MediaError,
    count_frames,
    decode_all,
    keyframes,
    load_image,
    load_image_sized,
    probe,
    read_frames,
)


def mad(a, b) -> float:
    """Mean absolute difference in 8-bit levels."""
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def assert_rgb8(img: np.ndarray, height: int, width: int) -> None:
    """The contract every decoded picture meets: HxWx3 uint8, C-contiguous."""
    assert img.shape == (height, width, 3) and img.dtype == np.uint8 and img.flags.c_contiguous, (img.shape, img.dtype)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("media_inputs")


def run_cli_watching_tmp(tmp_path, *args):
    """run_cli with the render's temporary folder (TMPDIR, inherited by the Ray workers the
    run starts) in tmp_path: (process, that folder), to check what a run leaves there. Ray's
    own session files stay where they always are."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    return run_cli(*args, env={"TMPDIR": str(tmp), "RAY_TMPDIR": tempfile.gettempdir()}), tmp


# ---- 1. phone video with display rotation -------------------------------------------

# ffmpeg's -display_rotation is counter-clockwise; MediaInfo.rotation is the clockwise turn
# that makes the coded picture upright (raypipe/media/video.py), so a CCW 90 display is 270.
ROTATIONS = {90: 270, -90: 90, 270: 90, 180: 180}


@pytest.fixture(scope="module")
def rotated(folder):
    """rotation -> (path, upright frames as numpy turns them, frames as ffmpeg decodes them upright)."""
    out = {}
    for rotation in ROTATIONS:
        path, upright = mi.rotated_clip(folder, rotation)
        h, w = upright.shape[1:3]
        out[rotation] = (path, upright, mi.ffmpeg_decode(path, w, h))
    return out


@pytest.mark.unit
@pytest.mark.parametrize("rotation", list(ROTATIONS))
def test_a_rotated_phone_clip_is_probed_and_decoded_upright(rotated, rotation):
    """probe reports the upright size and the rotation; decode_all and read_frames give upright
    frames equal to ffmpeg's own autorotated decode, each source frame once and in order."""
    path, upright, reference = rotated[rotation]
    n, h, w, _ = upright.shape
    # The input is what it claims: ffmpeg's upright decode is the numpy-turned source picture.
    assert reference.shape == upright.shape and mad(reference, upright) < 3

    info = probe(str(path))
    assert (info.width, info.height) == (w, h)
    assert info.rotation == ROTATIONS[rotation]
    assert abs(info.fps - 24) < 1e-6 and abs(info.duration - 1.0) < 0.05 and not info.audio and info.hdr is None

    frames = decode_all(str(path))
    assert frames.shape == reference.shape and frames.dtype == np.uint8
    assert count_frames(str(path)) == n
    read = np.stack(list(read_frames(str(path), 0.0, 1.0, 24, n)))
    assert read.shape == reference.shape
    for name, got in (("decode_all", frames), ("read_frames", read)):
        assert mad(got, reference) < 3, name
        # Quadrant colours where the upright picture has them (the check a transposed or
        # mirrored picture fails even where the mean difference might look small).
        assert np.abs(mi.quadrant_means(got[0]) - mi.quadrant_means(upright[0])).max() < 12, name
        # The moving marker is where ffmpeg puts it in every frame: right turn, right order.
        centres = np.array([mi.marker_centre(f) for f in got])
        expected = np.array([mi.marker_centre(f) for f in reference])
        assert np.abs(centres - expected).max() < 1.5, name


@pytest.mark.unit
def test_keyframes_of_a_rotated_clip_are_streamed_upright(rotated):
    """keyframes is a lazy generator of (time, upright frame) pairs at the requested rate."""
    path, upright, reference = rotated[90]
    stream = keyframes(str(path), [(0.25, 0.75)], 4.0)
    assert iter(stream) is stream and not isinstance(stream, (list, tuple))
    got = list(stream)
    assert [t for t, _ in got] == pytest.approx([0.25, 0.5, 0.75])
    for t, frame in got:
        assert_rgb8(frame, *upright.shape[1:3])
        assert mad(frame, reference[round(t * 24)]) < 3


@pytest.mark.render
def test_a_rotated_clip_renders_upright_through_the_cli(rotated, tmp_path):
    """A portrait render of a job whose only segment is the 90-degree phone clip: the video
    shows the upright picture (quadrant colours in place, close to the upright frames scaled),
    not the noise stripes of a frame size taken from the coded picture."""
    import cv2

    path, upright, _ = rotated[90]
    conf = tmp_path / "conf"
    (conf / "job").mkdir(parents=True)
    # A one-segment job: the source plays whole (1 s), static framing of the same aspect as
    # the output (9:16), so the whole upright picture fills the frame.
    (conf / "job" / "rotated.yaml").write_text(
        "# @package _global_\n"
        "job:\n  name: rotated\n  segments:\n"
        f"    - source: {path}\n      effect: static\n      audio: drop\n"
        "render: {width: 180, height: 320, fps: 24}\n")
    output = tmp_path / "out" / "rotated.mp4"
    proc, tmp = run_cli_watching_tmp(tmp_path, "--config-dir", str(conf), "+job=rotated", "detector=saliency",
                                     f"job.output={output}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(tmp.iterdir())
    video = mi.ffmpeg_decode(output, 180, 320)
    assert len(video) == 24
    expected = np.stack([cv2.resize(f, (180, 320), interpolation=cv2.INTER_AREA) for f in upright])
    for got, want in zip(video, expected):
        assert np.abs(mi.quadrant_means(got) - mi.quadrant_means(want)).max() < 15
    assert mad(video, expected) < 8
    # Inside each quadrant the picture is flat: neighbouring rows barely differ (garbage from a
    # wrong frame size shows as stripes, rows that differ a lot).
    inner = video[:, 20:140, 10:70].astype(float)  # the top-left quadrant, clear of the marker
    assert np.abs(np.diff(inner, axis=1)).mean() < 3


# ---- 2. stills with EXIF orientation ------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_shown_as_its_exif_orientation_says(tmp_path, orientation):
    """load_image applies all eight EXIF orientations: the stored pixels come out as the
    landscape quadrant picture they were stored from."""
    import cv2

    path, upright = mi.exif_jpeg(tmp_path, orientation)
    # The input is what it claims: OpenCV, which applies EXIF orientation itself, agrees.
    assert np.abs(mi.quadrant_means(cv2.imread(str(path))[:, :, ::-1]) - mi.quadrant_means(upright)).max() < 12
    img = load_image(str(path))
    assert_rgb8(img, *upright.shape[:2])
    assert np.abs(mi.quadrant_means(img) - mi.quadrant_means(upright)).max() < 12


@pytest.mark.unit
@pytest.mark.parametrize("orientation", (1, 6, 8))
def test_a_large_phone_jpeg_is_decoded_smaller_where_a_smaller_copy_will_do(tmp_path, orientation):
    """Detection and checks need only so many pixels: a 12-megapixel JPEG comes out at the
    smallest 1/2, 1/4 or 1/8 of its size still as large as asked, upright, with its full
    upright size beside it, and the same picture as the whole decode."""
    import cv2

    path, upright = mi.exif_jpeg(tmp_path, orientation, width=4000, height=3000)
    whole, size = load_image_sized(str(path))
    assert size == (4000, 3000) and whole.shape == (3000, 4000, 3)
    small, size = load_image_sized(str(path), at_least=640)
    assert size == (4000, 3000) and small.shape == (750, 1000, 3)  # a quarter: an eighth would be 500 wide
    expected = cv2.resize(whole, (1000, 750), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - expected).mean() < 2
    assert load_image(str(path), at_least=1).shape == (375, 500, 3)  # validation's: every byte, at 1/8
    png = tmp_path / "big.png"  # no DCT to scale: decoded whole
    cv2.imwrite(str(png), upright[:, :, ::-1])
    assert load_image(str(png), at_least=640).shape == (3000, 4000, 3)


@pytest.mark.unit
def test_a_subject_found_on_the_smaller_copy_is_in_the_photos_own_pixels(tmp_path):
    import cv2

    from raypipe.config import DetectorCfg
    from raypipe.detection.detector import detect_all, expand

    picture = np.full((3000, 4000, 3), (90, 110, 100), np.uint8)
    cv2.circle(picture, (3000, 1000), 400, (230, 60, 40), -1)
    path, _ = mi.exif_jpeg(tmp_path, 6, picture=picture)  # stored turned, shown as `picture`
    found, _ = detect_all(DetectorCfg(kind="saliency"), (str(path),), ())
    subject = expand(found)[str(path)]
    assert subject.source_size == (4000, 3000)
    x0, y0, x1, y1 = subject.box
    assert abs((x0 + x1) / 2 - 3000) < 60 and abs((y0 + y1) / 2 - 1000) < 60 and 600 < x1 - x0 < 1000


# ---- 3. bit depths, palettes, CMYK, alpha, ICC ----------------------------------------


@pytest.mark.unit
def test_a_16_bit_greyscale_ramp_is_scaled_not_clipped(tmp_path):
    """A 16-bit grey PNG from 0 to 65535 comes out as a grey ramp from 0 to 255 (v / 257), not
    all white as when 16-bit values are clipped to 8 bits."""
    img = load_image(str(mi.grey16_ramp(tmp_path)))
    assert_rgb8(img, 16, 256)
    row = img[8].astype(int)
    assert (row.max(1) - row.min(1)).max() <= 1  # grey
    grey = row[:, 0]
    assert np.all(np.diff(grey) >= 0) and grey[0] < 5 and grey[-1] > 250
    assert np.abs(grey - np.linspace(0, 255, 256)).max() <= 2  # linear in the code value


@pytest.mark.unit
def test_a_16_bit_rgb_png_keeps_its_colours(tmp_path):
    img = load_image(str(mi.rgb16_png(tmp_path)))
    assert_rgb8(img, 16, 16 * len(mi.RGB16_PATCHES))
    got = mi.patch_values(img, len(mi.RGB16_PATCHES))
    assert np.abs(got - [rgb8 for _, rgb8 in mi.RGB16_PATCHES]).max() <= 1


@pytest.mark.unit
def test_an_8_bit_greyscale_png_is_grey(tmp_path):
    img = load_image(str(mi.grey8_png(tmp_path)))
    assert_rgb8(img, 16, 16 * len(mi.GREY_LEVELS))
    got = mi.patch_values(img, len(mi.GREY_LEVELS))
    assert np.array_equal(got, np.repeat(np.array(mi.GREY_LEVELS, float)[:, None], 3, axis=1))


@pytest.mark.unit
@pytest.mark.parametrize("transparent", [False, True], ids=["opaque", "trns"])
def test_a_palette_png_is_expanded(tmp_path, transparent):
    """P-mode PNGs give their palette colours; with a tRNS chunk each entry's alpha composites
    over black like any other alpha."""
    img = load_image(str(mi.palette_png(tmp_path, transparent)))
    assert_rgb8(img, 16, 16 * len(mi.PALETTE))
    alpha = mi.PALETTE_ALPHA if transparent else [255] * len(mi.PALETTE)
    expected = [mi.over_black((*c, a)) for c, a in zip(mi.PALETTE, alpha)]
    assert np.abs(mi.patch_values(img, len(mi.PALETTE)) - expected).max() <= 1


@pytest.mark.unit
def test_a_cmyk_jpeg_shows_its_inks(tmp_path):
    """A CMYK JPEG as Photoshop and Pillow write it (Adobe marker, inverted values): pure cyan,
    magenta, yellow, black and paper white look like themselves (JPEG is lossy: within 20)."""
    img = load_image(str(mi.cmyk_jpeg(tmp_path)))
    assert_rgb8(img, 16, 16 * len(mi.CMYK_PATCHES))
    got = mi.patch_values(img, len(mi.CMYK_PATCHES))
    assert np.abs(got - [rgb for _, rgb in mi.CMYK_PATCHES]).max() < 20


@pytest.mark.unit
def test_alpha_is_composited_over_black(tmp_path):
    """Documented behaviour: an RGBA still is composited over black, in its encoded values
    (colour * alpha / 255), so a half-transparent patch is half as bright, a clear one black."""
    img = load_image(str(mi.rgba_png(tmp_path)))
    assert_rgb8(img, 16, 16 * len(mi.RGBA_PATCHES))
    expected = [mi.over_black(c) for c in mi.RGBA_PATCHES]
    assert np.abs(mi.patch_values(img, len(mi.RGBA_PATCHES)) - expected).max() <= 1.5


@pytest.mark.unit
def test_an_embedded_wide_gamut_icc_profile_is_converted_to_srgb(tmp_path):
    """An RGB PNG tagged with an Adobe RGB (1998) profile (written by hand, so the test knows
    exactly what it says) comes out as the sRGB values computed with numpy colour math,
    within a few levels; reading its numbers as sRGB would be off by up to ~50 levels."""
    expected = np.array([mi.adobe_to_srgb(c) for c in mi.ICC_COLOURS])
    # The test can tell: ignoring the profile would be far off for the saturated colours.
    assert np.abs(expected - mi.ICC_COLOURS).max() > 40
    img = load_image(str(mi.icc_png(tmp_path)))
    assert_rgb8(img, 16, 16 * len(mi.ICC_COLOURS))
    assert np.abs(mi.patch_values(img, len(mi.ICC_COLOURS)) - expected).max() <= 3


# ---- 4. anamorphic ------------------------------------------------------------------


@pytest.mark.unit
def test_an_anamorphic_clip_is_shown_at_its_display_aspect(folder):
    """A 240x180 clip with SAR 4:3 is a 16:9 picture: probe says 320x180, and the frames are
    the 320x180 picture it was squeezed from (the disc in it is round again)."""
    path, picture = mi.anamorphic_clip(folder)
    info = probe(str(path))
    assert (info.width, info.height) == (320, 180) and info.rotation == 0
    frames = decode_all(str(path))
    assert frames.shape == (12, 180, 320, 3)
    read = list(read_frames(str(path), 0.0, 1.0, 24, 4))
    assert len(read) == 4
    for frame in (frames[0], read[-1]):
        assert_rgb8(np.ascontiguousarray(frame), 180, 320)
        assert mad(frame, picture) < 4  # squeezing and stretching back blurs only the edges
        assert np.abs(mi.quadrant_means(frame) - mi.quadrant_means(picture)).max() < 10
        # The disc's extent through its centre, thresholded half way between white and the
        # quadrant colours (each has a channel <= 60), so the blurred edge counts by half.
        white = frame.min(axis=2) > 158
        disc_w, disc_h = white[90].sum(), white[:, 160].sum()
        assert abs(disc_w - disc_h) <= 3 and abs(disc_h - 108) <= 3, (disc_w, disc_h)


# ---- 5. variable frame rate ---------------------------------------------------------


@pytest.fixture(scope="module")
def vfr(folder):
    return mi.vfr_clip(folder)


def frame_index(frame: np.ndarray) -> int:
    """Which VFR frame this is, from its flat grey level."""
    return round((float(frame.mean()) - mi.vfr_level(0)) / (mi.vfr_level(1) - mi.vfr_level(0)))


@pytest.mark.unit
def test_a_vfr_clip_gives_exactly_the_planned_frames(vfr):
    """At a constant output rate, frame j is the source frame on screen at j/30 s (the last one
    starting at or before it), for a clip whose frames last 97 and 33 ms in turn; with a start
    and a speed, the times are start + speed * j / fps."""
    path, times = vfr
    for start, speed, count in ((0.0, 1.0, 30), (0.2, 2.0, 10)):
        got = list(read_frames(str(path), start, speed, 30, count))
        assert len(got) == count
        for frame in got:
            assert_rgb8(frame, 90, 160)
        expected = [mi.on_screen(times, start + speed * j / 30) for j in range(count)]
        assert [frame_index(f) for f in got] == expected, (start, speed)


@pytest.mark.unit
def test_a_vfr_clip_decodes_every_frame_once(vfr):
    path, times = vfr
    frames = decode_all(str(path))
    assert [frame_index(f) for f in frames] == list(range(len(times)))
    assert count_frames(str(path)) == len(times)
    info = probe(str(path))
    assert (info.width, info.height) == (160, 90) and 1.1 < info.duration < 1.25


# ---- 6. 10-bit and HDR --------------------------------------------------------------


@pytest.mark.unit
def test_a_10_bit_sdr_clip_decodes_like_its_8_bit_twin(folder):
    path8, path10, picture = mi.sdr_pair(folder)
    a, b = decode_all(str(path8)), decode_all(str(path10))
    assert a.shape == b.shape == (6, 180, 320, 3) and b.dtype == np.uint8
    assert mad(b, a) < 3 and mad(b[0], picture) < 3
    assert probe(str(path10)).hdr is None and probe(str(path8)).hdr is None


def grey_patches(frame: np.ndarray, n: int, side=32) -> np.ndarray:
    """(n, 3) mean colours of the grey patches of an HDR test frame."""
    return mi.patch_values(frame, n, side)


def assert_tone_mapped(frame, n, black, mid, white):
    """A grey ramp after tone mapping to SDR: neutral, monotonic, black dark, reference white
    bright, mid grey in between (not washed out, not crushed)."""
    patches = grey_patches(frame, n)
    assert (patches.max(1) - patches.min(1)).max() < 10, patches  # greys stay grey
    level = patches.mean(1)
    assert np.all(np.diff(level) >= -1), level
    assert level[black] < 40 and level[white] > 180 and 40 < level[mid] < 180, level


@pytest.mark.unit
def test_a_pq_hdr_clip_is_tone_mapped_to_sdr(folder):
    path = mi.pq_clip(folder)
    info = probe(str(path))
    assert info.hdr == "pq" and (info.width, info.height) == (32 * len(mi.PQ_NITS), 32)
    frames = list(read_frames(str(path), 0.0, 1.0, 24, 3))
    assert len(frames) == 3
    assert_rgb8(frames[0], info.height, info.width)
    assert_tone_mapped(frames[0], len(mi.PQ_NITS), 0, mi.PQ_MID_GREY, mi.PQ_REFERENCE_WHITE)
    # decode_all goes through the same tone mapping.
    assert mad(decode_all(str(path))[0], frames[0]) < 2


@pytest.mark.unit
def test_an_hlg_hdr_clip_is_tone_mapped_to_sdr(folder):
    path = mi.hlg_clip(folder)
    info = probe(str(path))
    assert info.hdr == "hlg"
    frame = next(iter(read_frames(str(path), 0.0, 1.0, 24, 1)))
    assert_rgb8(frame, info.height, info.width)
    assert_tone_mapped(frame, len(mi.HLG_SIGNALS), 0, mi.HLG_MID_GREY, mi.HLG_REFERENCE_WHITE)


# ---- 7. undecodable sources ---------------------------------------------------------

# (generator, the segment it replaces, words the message must contain). Segment 2 of the
# fixture job is a video segment, segment 4 an image.
BROKEN = {
    "truncated_mp4": (mi.truncated_mp4, 2, ""),
    # Cut at 80 %: the first 1.4 s decode, only the file's last half second is missing.
    "truncated_tail_mp4": (lambda d: mi.truncated_mp4(d, keep=0.8), 2, ""),
    "audio_only_mp4": (mi.audio_only_mp4, 2, "no video stream"),
    "empty_mp4": (lambda d: mi.empty_file(d, "empty.mp4"), 2, ""),
    "cut_png": (mi.cut_png, 4, ""),
    "empty_png": (lambda d: mi.empty_file(d, "empty.png"), 4, ""),
}


@pytest.mark.unit
@pytest.mark.parametrize("kind", list(BROKEN))
def test_an_undecodable_source_raises_one_line_naming_the_file(tmp_path, kind):
    """The media API refuses a source it cannot decode with a MediaError: one line, with the
    file's path in it. Videos are refused by probe (what validation runs), before any frame is
    asked for; stills by load_image."""
    make, segment, words = BROKEN[kind]
    path = str(make(tmp_path))
    with pytest.raises(MediaError) as caught:
        probe(path) if segment == 2 else load_image(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message.strip() and path in message and words in message, message


@pytest.mark.unit
def test_a_truncated_clip_is_never_decoded_as_if_whole(tmp_path):
    """decode_all promises every frame of the stream: a file cut short raises instead of
    returning the frames before the cut as if they were all."""
    path = str(mi.truncated_mp4(tmp_path))
    with pytest.raises(MediaError):
        decode_all(path)


@pytest.mark.render
@pytest.mark.parametrize("kind", list(BROKEN))
def test_an_undecodable_source_stops_the_render_before_any_work(tmp_path, kind):
    """Through the CLI: exit 2, one stderr line `error: job.segments[i].source: ...` naming the
    file, and no video, chunk or report written."""
    make, segment, words = BROKEN[kind]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = make(inputs)
    output = tmp_path / "out" / "video.mp4"
    # The replacement clips are short and silent: play each whole (from 0 to its end, as the
    # header tells it) without its sound.
    video_args = [f"job.segments.{segment}.{key}" for key in ("start=0", "duration=null", "audio=drop")] \
        if segment == 2 else []
    proc, tmp = run_cli_watching_tmp(tmp_path, "--config-dir", "tests/conf", "+job=fixture", "detector=saliency",
                                     f"job.segments.{segment}.source={path}", *video_args, f"job.output={output}",
                                     f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: job.segments[{segment}].source: "), proc.stderr
    assert str(path) in lines[0] and words in lines[0], lines[0]
    assert not output.parent.exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and inputs not in p.parents]
    # Hydra's own log and config are all a refused run leaves.
    assert not [p for p in written if p.suffix in (".mp4", ".json") or "segments" in p.parts], written
    assert not list(tmp.iterdir())  # nor any temporary file or folder
