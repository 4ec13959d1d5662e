"""Editly specs rendered as they are: converted to a job with Editly's frame count, size and
rate; every one of Editly's own examples (tests/editly/, MIT, its notice beside them) either
plans to Editly's frame count or fails in one line naming its path; a title lands where its
`position` says, measured on decoded frames."""
import json
import logging
import os
import re
import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import json5
import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import FFMPEG, ROOT, run_cli
from media_inputs import ffmpeg_decode
from raypipe.api import config
from raypipe.engine.driver import render
from raypipe.errors import ConfigError, JobError
from raypipe.media import count_frames, probe
from raypipe.media.images import load_image
from raypipe.plan.editly import convert
from raypipe.plan.editly.layers import place
from raypipe.plan.editly.timing import clip_frames, total_frames
from raypipe.plan.timeline import plan

EDITLY = Path(__file__).parent / "editly"
EXAMPLES = ROOT / "examples" / "editly"
ASSETS = ROOT / "raypipe" / "assets"
VIDEOS = (".mp4", ".mov", ".webm")
SOUNDS = (".m4a", ".mp3")
PHOTOS = {"vertical.jpg": "astronaut", "pano.jpg": "rocket", "img1.jpg": "astronaut", "img2.jpg": "coffee",
          "img3.jpg": "chelsea"}

# Editly's own examples whose layer types raypipe draws, with Editly's frame count (editly.md,
# section 1: sum N_i - sum S_i; their media here is raypipe's 4 s, 30 fps demo clip).
CONVERTS = {
    "alpha": 93, "audio-transition": 459, "audio-volume": 50, "audio1": 309, "audio2": 465, "audio3": 270,
    "audioLoop": 250, "contain-blur": 13, "customOutputArgs": 50, "gradients": 91, "image": 40, "imageOverlay": 60, "kenBurns": 199,
    "mosaic": 60, "newsTitle": 250, "ph": 51, "remote": 274, "single": 60, "slideInText": 75, "smartFit": 144,
    "speedTest": 210, "timeoutTest": 126, "transitionEasing": 96, "transitions": 2055, "transparentGradient": 3,
    "videos": 360, "videos2": 105, "vignette": 60, "visibleFromUntil": 210,
}
FAILS = {
    "commonFeatures": "clips[2].layers[0].type: rainbow-colors is not supported",
    "gl": "clips[0].layers[0].type: gl is not supported",
    "pip": "clips[0].layers[0].type: rainbow-colors is not supported",
    "position": "clips[0].layers[0].type: rainbow-colors is not supported",
    "subtitle": "clips[0].layers[0].type: rainbow-colors is not supported",
}


def with_assets(folder: Path, spec: Path) -> Path:
    """The spec copied into `folder`, each file it names made there, of the same kind: raypipe's
    demo clip for a video, its soundtrack for a sound, a sample photograph or the logo for an
    image (fonts left missing: they fall back)."""
    shutil.copy(spec, folder / spec.name)
    for name in sorted(set(re.findall(r'"(\.?/?assets/[^"]+)"', spec.read_text()))):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = target.suffix.lower()
        if suffix in VIDEOS:
            shutil.copy(ASSETS / "demo_clip.mp4", target)
        elif suffix in SOUNDS:
            shutil.copy(ASSETS / "demo_soundtrack.m4a", target)
        elif suffix in (".png", ".svg"):
            shutil.copy(ASSETS / "logo.png", target)
        elif suffix == ".jpg":
            Image.fromarray(load_image(f"sample:{PHOTOS.get(target.name, 'coffee')}")).save(target)
    # A remote photo (picsum.photos) as a local one, as a user downloads it: raypipe does not.
    remote = folder / "remote.jpg"
    Image.fromarray(load_image("sample:rocket")).save(remote)
    copied = folder / spec.name
    copied.write_text(re.sub(r'"https://[^"]+"', f'"{remote}"', copied.read_text()))
    return copied


def write_spec(folder: Path, spec: dict, name="spec.json5") -> Path:
    path = folder / name
    path.write_text(json.dumps(spec))
    return path


# ---- unit: timing, conversion, failures ---------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("seconds,transitions,fps,frames", [
    ([3, 3, 3], [0.5, 0.5, 0.5], 25, 199),  # kenBurns.json5: 8 s
    ([4, 4, 4], [0.5, 0.5, 0.5], 15, 164),  # editly's integration test: 10.93 s of video
    ([3] * 68, [1] * 68, 15, 137 * 15),  # transitions.json5: 68 x 3 - 67 x 1 s
    ([1, 2], [0, 0], 24, 72),  # no transition: the clips end to end
])
def test_clips_overlap_by_their_transitions_as_editlys_do(seconds, transitions, fps, frames):
    found = clip_frames([Fraction(s) for s in seconds], [Fraction(t).limit_denominator(100) for t in transitions],
                        Fraction(fps))
    assert total_frames(found) == frames
    # raypipe's segments (a clip less what the transition before it showed) add up to it.
    assert sum(c.segment_frames for c in found) == frames


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(CONVERTS))
def test_editlys_examples_plan_to_editlys_frame_count(tmp_path, name):
    converted = convert(with_assets(tmp_path, EDITLY / f"{name}.json5"))
    assert converted.frames == CONVERTS[name]
    cfg = config(converted.fragment, ["detector=saliency"])
    planned = plan(cfg.job, cfg.render)
    assert planned.total_frames == CONVERTS[name]
    assert (planned.encode.width, planned.encode.height, planned.encode.fps) == (
        converted.output.width, converted.output.height, converted.output.fps)


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(FAILS))
def test_editlys_other_examples_fail_in_one_line_naming_the_path(tmp_path, name):
    with pytest.raises(JobError) as e:
        convert(with_assets(tmp_path, EDITLY / f"{name}.json5"))
    assert str(e.value).startswith(FAILS[name])
    assert "\n" not in str(e.value)


@pytest.mark.unit
def test_every_example_of_editly_is_accounted_for():
    assert {p.stem for p in EDITLY.glob("*.json5")} == set(CONVERTS) | set(FAILS)


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["gl", "canvas", "fabric", "rainbow-colors", "editly-banner", "shape"])
def test_each_unsupported_layer_type_fails_with_its_path(tmp_path, kind):
    spec = {"clips": [{"layers": [{"type": "fill-color"}]}, {"layers": [{"type": "title", "text": "x"},
                                                                       {"type": kind}]}]}
    with pytest.raises(JobError, match=re.escape(f"clips[1].layers[1].type: {kind} is not supported")):
        convert(write_spec(tmp_path, spec))


@pytest.mark.unit
def test_a_missing_font_falls_back_with_one_warning_line(tmp_path, caplog):
    font = next(p for p in Path("/usr/share/fonts").rglob("DejaVuSans.ttf"))
    spec = {"defaults": {"layer": {"fontPath": "./fonts/Missing.ttf"}},
            "clips": [{"layers": [{"type": "title", "text": "a"}, {"type": "subtitle", "text": "b"}]},
                      {"layers": [{"type": "title", "text": "c", "fontPath": str(font)}]}]}
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        job = convert(write_spec(tmp_path, spec)).fragment["job"]
    said = [r.getMessage() for r in caplog.records if "fontPath" in r.getMessage()]
    assert said == [f"clips[0].layers[0].fontPath: {tmp_path / 'fonts/Missing.ttf'} is missing; drawn in DejaVu Sans"]
    assert [layer.get("font") for layer in job["layers"]] == [None, None, str(font)]


@pytest.mark.unit
def test_ffmpegs_own_output_arguments_are_ignored_with_one_warning_line(tmp_path, caplog):
    spec = {"clips": [{"duration": 1, "layers": [{"type": "fill-color", "color": "#102030"}]}],
            "customOutputArgs": ["-vcodec", "libwebp"]}
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        converted = convert(write_spec(tmp_path, spec))
    assert [r.getMessage() for r in caplog.records] == [
        "customOutputArgs: ignored; raypipe encodes an MP4 with render.codec, render.crf and render.preset"]
    assert converted.frames == 25 and "customOutputArgs" not in str(converted.fragment)


@pytest.mark.unit
def test_a_radial_gradient_is_a_radial_card_at_the_middle_of_editlys_growth(tmp_path):
    spec = {"clips": [{"duration": 1, "layers": [{"type": "radial-gradient", "colors": ["#ffffff", "#000000"]}]}]}
    assert convert(write_spec(tmp_path, spec)).fragment["job"]["segments"][0]["source"] == \
        "radial:#ffffff,#000000,0.9"


@pytest.mark.unit
def test_relative_paths_are_taken_from_the_specs_folder(tmp_path):
    (tmp_path / "media").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "media" / "a.jpg")
    job = convert(write_spec(tmp_path, {"clips": [{"layers": [{"type": "image", "path": "media/a.jpg"}]}]}))
    assert job.fragment["job"]["segments"][0]["source"] == str(tmp_path / "media" / "a.jpg")


@pytest.mark.unit
def test_a_transition_raypipe_lacks_is_the_nearest_with_one_warning_line(tmp_path, caplog):
    spec = {"defaults": {"duration": 1, "transition": {"name": "dreamyzoom", "duration": 0.2}},
            "clips": [{"layers": [{"type": "pause"}]}] * 3 + [{"transition": {"name": "directional-left"},
                                                                "layers": [{"type": "pause"}]},
                                                               {"layers": [{"type": "pause"}]}]}
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        segments = convert(write_spec(tmp_path, spec)).fragment["job"]["segments"]
    assert [r.getMessage() for r in caplog.records] == [
        "clips[0].transition.name: dreamyzoom has no raypipe equivalent; drawn as zoom_through"]
    assert [s.get("transition", {}).get("type") for s in segments] == ["zoom_through"] * 3 + ["wipe", None]
    assert segments[3]["transition"]["params"] == {"direction": "left"}


@pytest.mark.unit
@pytest.mark.parametrize("position,anchor,offset", [
    ("top", "top", [0.0, -0.05]),
    ("bottom-right", "bottom_right", [-0.05, 0.05]),
    ("center-left", "left", [0.05, 0.0]),
    ({"x": 0.3, "y": 0.6, "originX": "center", "originY": "center"}, "center", [-0.2, -0.1]),
    ({"x": 0, "y": 1, "originY": "bottom"}, "bottom_left", [0.0, 0.0]),
])
def test_editlys_positions_put_the_origin_where_editly_does(position, anchor, offset):
    assert place(position, "clips[0].layers[0]") == {"position": anchor, "margin": 0.0, "offset": offset}


@pytest.mark.unit
def test_a_video_clip_with_a_duration_plays_its_cut_retimed_to_fill_it(tmp_path):
    spec = {"clips": [{"duration": 1, "layers": [{"type": "video", "path": str(ASSETS / "demo_clip.mp4"),
                                                  "cutFrom": 1, "cutTo": 3}]}]}
    converted = convert(write_spec(tmp_path, spec))
    segment = converted.fragment["job"]["segments"][0]
    assert (segment["start"], segment["end"], segment["speed"]) == (1.0, 3.0, 2.0)
    info = probe(str(ASSETS / "demo_clip.mp4"))
    assert (converted.output.width, converted.output.height) == (info.width, info.height)


HIGH = "High [NCS Release] - JPB  (No Copyright Music)-R8ZRCXy5vhA.m4a"


def heard(job: dict) -> list[tuple]:
    return [(Path(t["path"]).name, t["start"], t["cut_from"], t["cut_to"], t["speed"], t["volume"])
            for t in job["audio"].get("tracks", [])]


@pytest.mark.unit
def test_a_clips_audio_layers_are_heard_as_editly_mixes_them_with_keep_source_audio(tmp_path):
    job = convert(with_assets(tmp_path, EDITLY / "audio1.json5")).fragment["job"]
    # Clips of 0.5, 4, 2, 2 and 1.8 s at 30 fps, no transitions: they start at 0, 0.5, 4.5, 6.5
    # and 8.5 s. An audio layer's cut (by default the clip's length from cutFrom) is retimed to
    # fill its clip; a clip's sources are mixed each at mixVolume over their sum, one alone as
    # it is; there is no arbitrary stream, so no final mix.
    assert heard(job) == [(HIGH, 0.5, 2.0, 5.0, 0.75, 1.0),  # alone in its clip: mixVolume is moot
                          (HIGH, 4.5, 0.0, 2.0, 1.0, 1.0),  # 0.1 beside the video's 0
                          (HIGH, 6.5, 2.0, 3.0, 0.5, 0.333333)]  # 0.5 beside the video's 1
    assert [s.get("audio_volume") for s in job["segments"]] == [1.0, None, None, 0.666667, 1.0]
    without = {**json5.loads((EDITLY / "audio1.json5").read_text()), "keepSourceAudio": False}  # Editly mutes every clip's sound then, audio layers too
    assert convert(write_spec(tmp_path, without)).fragment["job"]["audio"] == {}


@pytest.mark.unit
def test_audio_tracks_and_detached_audio_are_placed_at_the_levels_of_editlys_final_mix(tmp_path):
    job = convert(with_assets(tmp_path, EDITLY / "audio3.json5")).fragment["job"]
    # The final amix: the clips' sound (silent: no keepSourceAudio) at clipsAudioVolume 1, the
    # audio track at 1 and the detached ones at 50 and 10, each over their sum, 62. A detached
    # one starts at its clip's start (1.5 s and 7 s: the clips overlap by 0.5 s transitions)
    # plus its own start.
    assert heard(job) == [(HIGH, 0.0, 18.0, None, 1.0, round(1 / 62, 6)),
                          ("Julen_ribas.m4a", 2.5, 2.0, None, 1.0, round(50 / 62, 6)),
                          ("winxp.mp3", 7.0, 0.5, None, 1.0, round(10 / 62, 6))]
    assert job["audio"]["normalize"] == {"enable": True, "window": 3, "max_gain": 100.0}
    volume = convert(with_assets(tmp_path, EDITLY / "audio-volume.json5")).fragment["job"]["audio"]
    assert volume["gain"] == round(10 ** (-10 / 20), 6) and heard({"audio": volume})[0][-1] == 0.5


@pytest.mark.unit
def test_a_gradient_over_another_layer_is_a_see_through_box(tmp_path):
    job = convert(with_assets(tmp_path, EDITLY / "transparentGradient.json5")).fragment["job"]
    assert job["segments"][0]["source"] == "color:#008000"
    assert [(x["type"], x["color"]) for x in job["layers"]] == [("box", "gradient:#ffffffff,#ffffff00,135")]


@pytest.mark.unit
def test_a_video_over_another_layer_is_a_video_layer_with_its_clips_timing_and_editlys_box(tmp_path):
    job = convert(with_assets(tmp_path, EDITLY / "visibleFromUntil.json5")).fragment["job"]
    dancer, _, changi = job["layers"]
    seconds = probe(str(ASSETS / "demo_clip.mp4")).duration
    # Clip 0 is 2 s (60 frames at 30 fps), and its cut (0 to 6 s, the file's end here) is retimed to fill
    # it; drawn where 0.5 <= t <= 1: frames 15 to 30. Its box is the frame, its origin at the top left.
    assert {k: dancer[k] for k in ("type", "fit", "cut_from", "width", "height", "position", "offset")} == {
        "type": "video", "fit": "contain", "cut_from": 0.0, "width": 1.0, "height": 1.0, "position": "top_left",
        "offset": [0.0, 0.0]}
    assert abs(dancer["cut_to"] - seconds) < 1e-3 and abs(dancer["speed"] - seconds / 2) < 1e-3
    assert (round(dancer["start"] * 30), round(dancer["length"] * 30)) == (15, 16)
    # Clip 2 has no duration (its first video's 4 s) and starts at frame 60 + 60 - 2 x 15: its
    # second video plays at its own pace from t = 1 s to 2 s, frames 30 to 60 of the clip.
    assert (changi["cut_from"], changi["cut_to"], changi["speed"]) == (0.0, 1.0, 1.0)
    assert (round(changi["start"] * 30), round(changi["length"] * 30)) == (120, 31)
    # A mosaic's tiles: its first video is in a box too, so the clip's picture is black under them.
    mosaic = convert(with_assets(tmp_path, EDITLY / "mosaic.json5")).fragment["job"]
    assert mosaic["segments"][0]["source"] == "color:#000000"
    assert [(x["fit"], x["position"], x["offset"], x["width"], x["height"]) for x in mosaic["layers"]] == [
        ("cover", "center", [0.0, 0.0], 0.4, 0.4), ("contain", "top_left", [0.0, 0.0], 0.4, 0.4),
        ("contain-blur", "top_right", [0.0, 0.0], 0.4, 0.4), ("contain-blur", "bottom_right", [0.0, 0.0], 0.4, 0.4),
        ("stretch", "bottom_left", [0.0, 0.0], 0.4, 0.4)]


@pytest.mark.unit
def test_a_video_layers_sound_is_heard_once_as_a_track_at_its_pictures_pace(tmp_path, caplog):
    kept = {**json5.loads(with_assets(tmp_path, EDITLY / "alpha.json5").read_text()), "keepSourceAudio": True}
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        job = convert(write_spec(tmp_path, kept)).fragment["job"]
    # Clip 0 (2 s) plays the dancer's cut, 0 to the file's 4 s, at 2x; clip 1 (from 1.5 s, 1.6 s
    # long: its first video's cut) has no duration, so the dancer plays at its own pace, heard
    # while its clip lasts. Each clip's two sources are mixed at 1 over their sum: 0.5 each.
    assert heard(job) == [("dancer1.webm", 0.0, 0.0, 4.0, 2.0, 0.5), ("dancer1.webm", 1.5, 0.0, 1.6, 1.0, 0.5)]
    assert [(x["speed"], round(x["start"], 6)) for x in job["layers"]] == [(2.0, 0.0), (1.0, 1.5)]
    assert [s.get("audio_volume") for s in job["segments"]] == [0.5, 0.5]
    assert not [r for r in caplog.records if "sound" in r.getMessage()]
    # A mosaic's first video is a tile, not the clip's picture: its sound is a track like the others'.
    mosaic = {**json5.loads(with_assets(tmp_path, EDITLY / "mosaic.json5").read_text()), "keepSourceAudio": True}
    job = convert(write_spec(tmp_path, mosaic)).fragment["job"]
    assert [(t[1], t[5]) for t in heard(job)] == [(0.0, 0.2)] * 5 and "audio" not in job["segments"][0]


@pytest.mark.unit
def test_a_spec_without_clips_is_not_an_editly_spec(tmp_path):
    with pytest.raises(JobError, match="not an Editly spec: it has no clips list"):
        convert(write_spec(tmp_path, {"layers": []}))


# ---- unit: bad values, missing files, literal text, render sizes, windows, sound, keys -----


PHOTO = {"type": "image", "path": "a.jpg"}


def tone(path: Path, seconds: float) -> None:
    """A 1 kHz sine at half scale, stereo, 48 kHz."""
    t = np.arange(round(48000 * seconds)) / 48000
    pcm = np.round(np.repeat(0.5 * np.sin(2 * np.pi * 1000 * t)[:, None], 2, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(48000)
        f.writeframes(pcm.tobytes())


def photo_spec(folder: Path, spec: dict) -> Path:
    """`spec` written beside a small photo, a.jpg, which PHOTO names."""
    Image.new("RGB", (64, 48), (90, 120, 150)).save(folder / "a.jpg")
    return write_spec(folder, spec)


def over(*layers: dict, **clip) -> dict:
    """A one-clip spec: the photo with `layers` over it."""
    return {"clips": [{"layers": [PHOTO, *layers], **clip}]}


@pytest.mark.unit
@pytest.mark.parametrize("spec,line", [
    ({"clips": [{"layers": [{**PHOTO, "zoomAmount": "big"}]}]},
     "clips[0].layers[0].zoomAmount: must be a number (got 'big')"),
    (over({"type": "image-overlay"}), "clips[0].layers[1].path: an image-overlay layer needs a path"),
    (over({"type": "title", "text": "a", "start": "x"}), "clips[0].layers[1].start: must be a number (got 'x')"),
    (over({"type": "title", "text": "a", "stop": 9}), "clips[0].layers[1].stop: must be after start"),
    (over({"type": "image-overlay", "path": "a.jpg", "width": "wide"}),
     "clips[0].layers[1].width: must be a number (got 'wide')"),
    (over({"type": "subtitle", "text": "a", "speed": "fast"}), "clips[0].layers[1].speed: must be a number"),
    (over({"type": "news-title", "text": "a", "speed": 0}), "clips[0].layers[1].speed: must be > 0"),
    (over({"type": "slide-in-text", "text": "a", "fontSize": [1]}), "clips[0].layers[1].fontSize: must be a number"),
    (over({"type": "title", "text": "a", "position": {"x": "a"}}), "clips[0].layers[1].position.x: must be a number"),
    (over({"type": "title", "text": "a", "position": {"x": 0.2, "originX": "middle"}}),
     "clips[0].layers[1].position.originX: must be one of left, center, right"),
    (over({"type": "title", "text": "a", "position": "middle"}), "clips[0].layers[1].position: must be one of center"),
    (over({"type": "title", "text": "a", "textColor": 5}), "clips[0].layers[1].textColor: must be a colour (got 5)"),
    (over({"type": "title", "text": "a", "fontPath": 7}), "clips[0].layers[1].fontPath: must be a string (got 7)"),
    (over({"type": "linear-gradient", "colors": ["#fff", "nope"]}), "clips[0].layers[1].colors[1]: 'nope' is not"),
    (over({"type": "title-background", "text": "a", "background": {"type": "fill-color", "color": 5}}),
     "clips[0].layers[1].background.color: must be a colour (got 5)"),
    (over({"type": "detached-audio", "path": "a.jpg", "mixVolume": "half"}),
     "clips[0].layers[1].mixVolume: must be a number (got 'half')"),
    ({"width": "x", "clips": [{"layers": [PHOTO]}]}, "width: must be a number (got 'x')"),
    ({"fps": "fast", "clips": [{"layers": [PHOTO]}]}, "fps: must be a number (got 'fast')"),
    ({"defaults": 5, "clips": [{"layers": [PHOTO]}]}, "defaults: must be an object (got 5)"),
    ({"defaults": {"layer": "x"}, "clips": [{"layers": [PHOTO]}]}, "defaults.layer: must be an object"),
    ({"defaults": {"duration": "long"}, "clips": [{"layers": [PHOTO]}]}, "defaults.duration: must be a number"),
    ({"clips": [{"transition": "fade", "layers": [PHOTO]}, {"layers": [PHOTO]}]},
     "clips[0].transition: must be an object (got 'fade')"),
    ({"clips": [{"transition": {"name": "fade", "duration": "x"}, "layers": [PHOTO]}, {"layers": [PHOTO]}]},
     "clips[0].transition.duration: must be a number"),
    ({"clips": [{"transition": {"name": 3}, "layers": [PHOTO]}, {"layers": [PHOTO]}]},
     "clips[0].transition.name: must be a string (got 3)"),
    ({"clips": [{"transition": {"name": "directional", "params": {"direction": ["a", 0]}}, "layers": [PHOTO]},
                {"layers": [PHOTO]}]}, "clips[0].transition.params.direction[0]: must be a number"),
    ({"clips": [{"duration": "2s", "layers": [PHOTO]}]}, "clips[0].duration: must be a number (got '2s')"),
    ({"clips": [{"layers": [{**PHOTO, "zoomDirection": "inn"}]}]},
     "clips[0].layers[0].zoomDirection: must be one of in, out, left, right, null (got 'inn')"),
    ({"clips": [{"layers": [{**PHOTO, "resizeMode": "fill"}]}]},
     "clips[0].layers[0].resizeMode: must be one of contain-blur, contain, cover, stretch, null (got 'fill')"),
    ({"audioFilePath": 5, "clips": [{"layers": [PHOTO]}]}, "audioFilePath: must be a string (got 5)"),
    ({"clipsAudioVolume": "loud", "audioTracks": [{"path": "a.jpg"}], "clips": [{"layers": [PHOTO]}]},
     "clipsAudioVolume: must be a number"),
    ({"audioNorm": True, "audioTracks": [{"path": "a.jpg"}], "clips": [{"layers": [PHOTO]}]},
     "audioNorm: must be an object (got True)"),
    # The ranges the converted job enforces, named by the spec's key rather than the job's.
    ({"clips": [{"layers": [{**PHOTO, "zoomAmount": -0.5}]}]}, "clips[0].layers[0].zoomAmount: must be >= 0 (got -0.5)"),
    ({"clips": [{"layers": [{**PHOTO, "zoomDirection": "left", "zoomAmount": -0.5}]}]},
     "clips[0].layers[0].zoomAmount: must be >= -0.3 (got -0.5)"),
    (over({"type": "image-overlay", "path": "a.jpg", "width": 1.5}),
     "clips[0].layers[1].width: must be > 0 and <= 1 (got 1.5)"),
    (over({"type": "image-overlay", "path": "a.jpg", "height": 0}), "clips[0].layers[1].height: must be > 0 and <= 1"),
    (over({"type": "slide-in-text", "text": "a", "fontSize": 0.9}), "clips[0].layers[1].fontSize: must be > 0 and <="),
    (over({"type": "title", "text": "A", "start": 3}, duration=2),
     "clips[0].layers[1].start: must be >= 0 and before the clip's end (2 s; got 3)"),
    (over({"type": "title", "text": "A", "start": -1}), "clips[0].layers[1].start: must be >= 0"),
    ({"clips": [{"layers": [{**PHOTO, "path": "https://picsum.photos/400/400"}]}]},
     "clips[0].layers[0].path: https://picsum.photos/400/400 is a https URL, which raypipe does not download: "
     "download it and give its path, or put it where raypipe reads (s3://...)"),
    (over({"type": "image-overlay", "path": "http://example.com/logo.png"}), "clips[0].layers[1].path: http://"),
])
def test_a_bad_value_fails_in_one_line_naming_its_path_in_the_spec(tmp_path, spec, line):
    with pytest.raises(JobError) as e:
        convert(photo_spec(tmp_path, spec))
    assert str(e.value).startswith(line), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.unit
def test_the_api_refuses_a_bad_value_naming_its_path_in_the_spec(tmp_path):
    spec = photo_spec(tmp_path, {"clips": [{"layers": [{**PHOTO, "zoomAmount": "big"}]}]})
    with pytest.raises(JobError, match=re.escape("clips[0].layers[0].zoomAmount: must be a number (got 'big')")):
        config(spec, ["detector=saliency"])


def titled_clips(transition: dict, fps=10) -> dict:
    """Two 2 s cards, each with its title (the first's at the top, the second's at the bottom),
    joined by `transition`."""
    def clip(color, text, position):
        return {"duration": 2, "layers": [{"type": "fill-color", "color": color},
                                          {"type": "title", "text": text, "position": position,
                                           "zoomDirection": None}]}
    return {"width": W, "height": H, "fps": fps, "defaults": {"transition": transition},
            "clips": [clip("#203040", "Out", "top"), clip("#402030", "In", "bottom")]}


@pytest.mark.unit
@pytest.mark.parametrize("name,params,outgoing,incoming", [
    # 10 fps: 20 frames a clip, overlapping by 10 (frames 10 to 19 of the video).
    ("fade", {}, (0.0, 2.0, None, ("fade", 1.0)), (1.0, 2.0, ("fade", 1.0), None)),
    ("fadecolor", {}, (0.0, 1.5, None, ("fade", 0.5)), (1.5, 1.5, ("fade", 0.5), None)),
    ("dummy", {}, (0.0, 2.0, None, None), (2.0, 1.0, None, None)),  # a cut, at the overlap's end
    ("directional", {"direction": [0, 1]}, (0.0, 2.0, None, ("slide_up", 1.0)), (1.0, 2.0, ("slide_up", 1.0), None)),
    ("directional-left", {}, (0.0, 2.0, None, ("slide_left", 1.0)), (1.0, 2.0, ("slide_left", 1.0), None)),
])
def test_a_clips_layers_go_with_it_through_its_transition(tmp_path, name, params, outgoing, incoming):
    """(start, length, in, out) of each clip's title: Editly draws a clip's layers into its own
    frame, so they fade, cut and move as their picture does."""
    spec = write_spec(tmp_path, titled_clips({"name": name, "duration": 1, "params": params}))
    found = convert(spec).fragment["job"]["layers"]

    def timed(layer):
        return (round(layer["start"], 6), round(layer["length"], 6),
                *((layer[k]["type"], round(layer[k]["duration"], 6)) if k in layer else None for k in ("in", "out")))
    assert [timed(layer) for layer in found] == [outgoing, incoming]


@pytest.mark.unit
def test_the_conversion_records_the_spec_path_of_each_job_key_it_writes(tmp_path):
    spec = photo_spec(tmp_path, {"clips": [{"duration": 2, "layers": [{**PHOTO, "start": 0.5}]},
                                           {"layers": [{"type": "fill-color"}, {"type": "title", "text": "A"},
                                                       {"type": "image-overlay", "path": "a.jpg", "width": 0.5}]}]})
    origins = convert(spec).origins
    assert origins.name("job.segments[0]") == "clips[0]"  # the black before the photo is shown
    assert origins.name("job.segments[1].source") == "clips[0].layers[0].path"
    assert origins.name("job.segments[1].params") == "clips[0].layers[0] (job.segments[1].params)"
    assert origins.name("job.segments[1].transition.duration") == "clips[0].transition (job.segments[1]" \
                                                                   ".transition.duration)"
    assert origins.name("job.segments[2]") == "clips[1].layers[0]"
    assert origins.name("job.layers[0]") == "clips[1].layers[1]"
    assert origins.name("job.layers[1].source") == "clips[1].layers[2].path"
    assert origins.name("job.layers[1].width") == "clips[1].layers[2].width"
    assert origins.name("job.audio.path") == "job.audio.path"  # not the spec's: as it is
    assert origins.text("job.layers[0]: at position center it covers a face") == \
        "clips[1].layers[1]: at position center it covers a face"


@pytest.mark.unit
@pytest.mark.parametrize("layers,line", [
    ([{"type": "image", "path": "song.m4a"}], "clips[0].layers[0].path: cannot decode image"),
    ([PHOTO, {"type": "image-overlay", "path": "song.m4a"}], "clips[0].layers[1].path: cannot decode image"),
])
def test_an_error_at_render_names_the_specs_path_not_the_jobs_key(tmp_path, layers, line):
    """A file that is no image fails once the job is planned, before any frame: named as the
    spec names it, as every error of a spec is."""
    from raypipe.api import render as render_job

    shutil.copy(ASSETS / "demo_soundtrack.m4a", tmp_path / "song.m4a")
    spec = photo_spec(tmp_path, {"width": W, "height": H, "fps": 10, "clips": [{"duration": 1, "layers": layers}]})
    with pytest.raises(JobError) as e:
        render_job(spec, ["detector=saliency", "render.cache=false"], run_dir=tmp_path / "run")
    assert str(e.value).startswith(line) and e.value.where == line.partition(":")[0], str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.render
def test_a_warning_at_render_names_the_specs_layer(tmp_path, caplog):
    from raypipe.api import render as render_job

    Image.fromarray(load_image("sample:astronaut")).save(tmp_path / "face.jpg")
    spec = write_spec(tmp_path, {"width": W, "height": H, "fps": 10, "clips": [{"duration": 1, "layers": [
        {"type": "image", "path": "face.jpg", "zoomDirection": None},
        {"type": "image-overlay", "path": "face.jpg", "width": 1.0}]}]})
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        render_job(spec, ["detector=saliency", "render.cache=false"], run_dir=tmp_path / "run")
    said = [r.getMessage() for r in caplog.records if "covers a face" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("clips[0].layers[1]: at position center"), said
    # The CLI so too: a photo that is the spec itself, no image.
    failed = run_cli(str(write_spec(tmp_path, {"clips": [{"layers": [{"type": "image", "path": "bad.json5"}]}]},
                                    "bad.json5")), "detector=saliency", cwd=tmp_path)
    assert failed.returncode == 2 and failed.stderr.startswith("error: clips[0].layers[0].path: cannot decode image"), \
        failed.stderr


@pytest.mark.render
def test_the_cli_refuses_a_bad_value_in_one_line_before_any_work(tmp_path):
    spec = photo_spec(tmp_path, {"clips": [{"layers": [{**PHOTO, "zoomAmount": "big"}]}]})
    failed = run_cli(str(spec), "detector=saliency", cwd=tmp_path)
    assert (failed.returncode, failed.stderr) == (
        2, "error: clips[0].layers[0].zoomAmount: must be a number (got 'big')\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "spec.json5"]  # no run directory


@pytest.mark.render
def test_the_cli_converts_a_spec_at_the_size_it_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # A slide-in text's size is a fraction of the width in Editly, whatever the aspect.
    spec = photo_spec(tmp_path, {"width": 1280, "height": 720, **over({"type": "slide-in-text", "text": "a"})})
    printed = run_cli(str(spec), "render.width=1080", "render.height=1920", "--cfg", "job", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    tall = convert(spec, width=1080, height=1920).fragment["job"]["layers"][0]["size"]
    assert yaml.safe_load(printed.stdout)["job"]["layers"][0]["size"] == tall == round(1080 * 0.05) / 1080
    assert convert(spec).fragment["job"]["layers"][0]["size"] == round(1280 * 0.05) / 720  # at the spec's own size


@pytest.mark.unit
@pytest.mark.parametrize("spec,where", [
    ({"clips": [{"layers": [{"type": "image", "path": "nope.jpg"}]}]}, "clips[0].layers[0].path"),
    (over({"type": "image-overlay", "path": "logo/nope.png"}), "clips[0].layers[1].path"),
    ({"clips": [{"layers": [{"type": "video", "path": "nope.mp4"}]}]}, "clips[0].layers[0].path"),
    (over({"type": "audio", "path": "nope.m4a"}), "clips[0].layers[1].path"),
    (over({"type": "detached-audio", "path": "nope.m4a"}), "clips[0].layers[1].path"),
    ({"audioFilePath": "nope.m4a", "clips": [{"layers": [PHOTO]}]}, "audioFilePath"),
    ({"audioTracks": [{"path": "nope.m4a"}], "clips": [{"layers": [PHOTO]}]}, "audioTracks[0].path"),
])
def test_a_missing_file_fails_at_conversion_naming_its_path_in_the_spec(tmp_path, spec, where):
    with pytest.raises(JobError) as e:
        convert(photo_spec(tmp_path, spec))
    assert str(e.value).startswith(f"{where}: no such file: {tmp_path}/"), str(e.value)


@pytest.mark.unit
def test_an_empty_text_fails_as_editlys_does_naming_its_path(tmp_path):
    # Editly 0.14.2's parseConfig.js asserts a text on every text layer ("Please specify a text").
    for kind in ("title", "subtitle", "news-title", "slide-in-text", "title-background"):
        with pytest.raises(JobError, match=re.escape("clips[0].layers[1].text: is empty")):
            convert(photo_spec(tmp_path, over({"type": kind, "text": ""})))


@pytest.mark.unit
def test_a_font_file_that_does_not_load_falls_back_with_one_warning_line(tmp_path, caplog):
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    spec = over({"type": "title", "text": "a", "fontPath": "broken.ttf"}, {"type": "subtitle", "text": "b",
                                                                           "fontPath": "broken.ttf"})
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        job = convert(photo_spec(tmp_path, spec)).fragment["job"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(
        f"clips[0].layers[1].fontPath: {tmp_path / 'broken.ttf'} is not a font raypipe can load"), said
    assert said[0].endswith("drawn in DejaVu Sans")
    assert [layer.get("font") for layer in job["layers"]] == [None, None]


@pytest.mark.unit
def test_editlys_text_is_drawn_literally_where_omegaconf_would_interpolate(tmp_path):
    texts = ["Only ${price}", "a \\${x} b", "$ {not} ${"]
    spec = over(*({"type": "title", "text": t} for t in texts))
    converted = convert(photo_spec(tmp_path, spec))
    cfg = config(converted.fragment, ["detector=saliency"])
    assert [layer.text for layer in cfg.job.layers] == texts
    # convert's YAML renders the same: read back and composed, the text is as written.
    again = config(yaml.safe_load(yaml.safe_dump(converted.fragment)), ["detector=saliency"])
    assert [layer.text for layer in again.job.layers] == texts


@pytest.mark.unit
def test_a_spec_rendered_at_another_size_is_converted_at_that_size(tmp_path):
    spec = over({"type": "title", "text": "a"}, {"type": "subtitle", "text": "b"}, {"type": "news-title", "text": "c"},
                {"type": "slide-in-text", "text": "d"})
    spec.update({"width": 1280, "height": 720})
    path = photo_spec(tmp_path, spec)
    tall = {**spec, "width": 1080, "height": 1920}
    expected = convert(write_spec(tmp_path, tall, "tall.json5")).fragment["job"]["layers"]
    cfg = config(path, ["render.width=1080", "render.height=1920", "detector=saliency"])
    sizes = [(layer.size, layer.width, list(layer.offset)) for layer in cfg.job.layers]
    assert sizes == [(x["size"], x.get("width"), x["offset"]) for x in expected]
    assert sizes != [(x["size"], x.get("width"), x["offset"]) for x in convert(path).fragment["job"]["layers"]]
    assert (cfg.render.width, cfg.render.height) == (1080, 1920)


@pytest.mark.unit
def test_a_picture_shown_for_part_of_its_clip_is_black_around_it_and_zooms_over_its_window(tmp_path):
    # A 2 s clip at 25 fps (50 frames), the photo from 0.5 to 1 s: frames 13 to 25 (t = k / 25).
    spec = {"fps": 25, "width": 160, "height": 90, "clips": [
        {"duration": 2, "transition": None, "layers": [{**PHOTO, "start": 0.5, "stop": 1.0}]},
        {"duration": 1, "layers": [{"type": "fill-color", "color": "#102030"}]}]}
    converted = convert(photo_spec(tmp_path, spec))
    segments = converted.fragment["job"]["segments"]
    assert [(s["source"].rsplit("/", 1)[-1], s["effect"], round(s["duration"] * 25)) for s in segments] == [
        ("color:#000000", "static", 13), ("a.jpg", "ken_burns", 13), ("color:#000000", "static", 24),
        ("color:#102030", "static", 25)]
    assert converted.frames == 75
    cfg = config(converted.fragment, ["detector=saliency"])
    assert plan(cfg.job, cfg.render).total_frames == 75
    # A card from the clip's start carries its transition on its last part, the black after it.
    spec["clips"][0].update({"layers": [{"type": "fill-color", "color": "#ff0000", "stop": 1.0}],
                             "transition": {"name": "fade", "duration": 0.4}})
    segments = convert(write_spec(tmp_path, spec)).fragment["job"]["segments"]
    assert [(s["source"], round(s["duration"] * 25), s.get("transition", {}).get("type")) for s in segments] == [
        ("color:#ff0000", 26, None), ("color:#000000", 24, "crossfade"), ("color:#102030", 15, None)]
    # A window ending inside that transition would need two pictures blended into the next: refused.
    spec["clips"][0]["layers"][0]["stop"] = 1.7
    with pytest.raises(JobError, match=re.escape("clips[0].layers[0].stop: its window (frames 0 to 43 of 50) splits "
                                                 "the clip's closing 10-frame transition")):
        convert(write_spec(tmp_path, spec))


@pytest.mark.unit
def test_a_short_soundtrack_plays_once_without_loop_audio_and_loops_with_it(tmp_path, caplog):
    tone(tmp_path / "one.wav", 1.0)
    spec = {"audioFilePath": "one.wav", "defaults": {"transition": None},
            "clips": [{"duration": 3, "layers": [{"type": "fill-color", "color": "#102030"}]}]}
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        audio = convert(write_spec(tmp_path, spec)).fragment["job"]["audio"]
    # Once, from the start, then silence: a track, which raypipe does not loop.
    assert "path" not in audio and audio["tracks"] == [
        {"path": str(tmp_path / "one.wav"), "start": 0.0, "cut_from": 0.0, "cut_to": None, "volume": 0.5,
         "speed": 1.0}]
    assert not caplog.records
    cfg = config(convert(write_spec(tmp_path, spec)).fragment, ["detector=saliency"])
    assert cfg.job.audio.path is None and len(cfg.job.audio.tracks) == 1
    looped = convert(write_spec(tmp_path, {**spec, "loopAudio": True})).fragment["job"]["audio"]
    assert looped == {"path": str(tmp_path / "one.wav"), "volume": 0.5}


@pytest.mark.unit
def test_a_volume_may_be_written_as_a_string_as_editlys_types_allow(tmp_path):
    tracks = [{"path": "a.jpg", "mixVolume": "3"}, {"path": "a.jpg", "mixVolume": 1}]
    job = convert(photo_spec(tmp_path, {"clipsAudioVolume": "0", "audioTracks": tracks,
                                        "clips": [{"layers": [PHOTO]}]})).fragment["job"]
    assert [t["volume"] for t in job["audio"]["tracks"]] == [0.75, 0.25]


@pytest.mark.unit
def test_an_unknown_key_is_ignored_with_one_warning_line_naming_it(tmp_path, caplog):
    spec = {"defaults": {"durations": 2, "transition": {"nmae": "fade"}, "layer": {"anything": 1},
                         "layerType": {"titel": {}, "title": {"fontsize": 3}}},
            "clips": [{"foo": 1, "transition": {"durtion": 1}, "layers": [{**PHOTO, "zoomdirection": "out"},
                                                                         {"type": "title", "text": "a", "fontsize": 3}]},
                      {"foo": 2, "layers": [{"type": "title-background", "text": "b", "fontsize": 3}]}]}
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        convert(photo_spec(tmp_path, spec))
    assert [r.getMessage() for r in caplog.records if "Editly key" in r.getMessage()] == [
        "defaults.durations: not an Editly key of defaults; ignored",
        "defaults.transition.nmae: not an Editly key of a transition; ignored",
        "defaults.layerType.titel: not an Editly key of layerType (a layer type); ignored",
        "defaults.layerType.title.fontsize: not an Editly key of title; ignored",
        "clips[0].foo: not an Editly key of a clip; ignored",
        "clips[0].layers[0].zoomdirection: not an Editly key of image; ignored",
        "clips[0].layers[1].fontsize: not an Editly key of title; ignored",
        "clips[0].transition.durtion: not an Editly key of a transition; ignored",
        "clips[1].foo: not an Editly key of a clip; ignored",
        "clips[1].layers[0].fontsize: not an Editly key of title-background; ignored"]


@pytest.mark.unit
@pytest.mark.parametrize("spec", [*(EDITLY / f"{n}.json5" for n in sorted(CONVERTS)), *sorted(EXAMPLES.glob("*.json5"))],
                         ids=lambda p: p.stem)
def test_editlys_examples_and_ours_use_only_keys_editly_knows(tmp_path, spec, caplog):
    with caplog.at_level(logging.WARNING, logger="raypipe"):
        convert(with_assets(tmp_path, spec) if spec.parent == EDITLY else spec)
    assert not [r.getMessage() for r in caplog.records if "Editly key" in r.getMessage()]


# ---- render: the repository's examples, the CLI, placement on decoded frames --------------


@pytest.mark.render
@pytest.mark.parametrize("name,frames,fps", [("kenburns", 240, 30), ("titles", 185, 25), ("clip", 102, 30)])
def test_the_example_specs_render_with_editlys_frame_count_size_and_rate(tmp_path, name, frames, fps):
    out = tmp_path / f"{name}.mp4"
    spec = EXAMPLES / f"{name}.json5"
    cfg = config(spec, ["render.width=160", "render.height=90", "detector=saliency", f"job.output={out}"])
    render(cfg, str(tmp_path / "run"), quiet=True)
    info = probe(str(out))
    assert count_frames(str(out)) == frames == convert(spec).frames
    assert (info.width, info.height, round(info.fps, 3)) == (160, 90, fps)


@pytest.mark.render
@pytest.mark.parametrize("name", sorted(CONVERTS))
def test_editlys_examples_render_with_editlys_frame_count(tmp_path, name):
    """Each of Editly's examples that converts renders whole, at a quarter of its size (its size
    and rate are the plan's, checked above), and its video has Editly's frame count."""
    out, spec = tmp_path / f"{name}.mp4", with_assets(tmp_path, EDITLY / f"{name}.json5")
    size = convert(spec).output
    small = [f"render.width={size.width // 8 * 2}", f"render.height={size.height // 8 * 2}"]
    cfg = config(spec, [*small, "detector=saliency", "render.cache=false", f"job.output={out}"])
    render(cfg, str(tmp_path / "run"), quiet=True)
    assert count_frames(str(out)) == CONVERTS[name]


@pytest.mark.render
def test_the_cli_renders_and_converts_a_spec_and_refuses_a_gl_layer_before_any_work(tmp_path):
    out = tmp_path / "titles.mp4"
    done = run_cli(str(EXAMPLES / "titles.json5"), "render.width=128", "render.height=72", "detector=saliency",
                   f"job.output={out}", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert count_frames(str(out)) == 185
    printed = run_cli(str(EXAMPLES / "titles.json5"), command="convert")
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout)["render"] == {"width": 640, "height": 360, "fps": "25"}
    bad = tmp_path / "bad"
    bad.mkdir()
    spec = write_spec(bad, {"clips": [{"layers": [{"type": "fill-color"}]}, {"layers": [{"type": "gl"}]}]})
    for command in ("render", "convert"):
        failed = run_cli(str(spec), command=command, cwd=bad)
        assert (failed.returncode, failed.stderr) == (2, "error: clips[1].layers[0].type: gl is not supported\n")
    assert sorted(p.name for p in bad.iterdir()) == ["spec.json5"]  # no run directory: nothing started


W, H = 320, 180


def rendered_title(tmp_path, position, tag: str) -> np.ndarray:
    """The frames of one second of a flat card, with a title at `position` (None: no title)."""
    layers = [{"type": "fill-color", "color": "#203040"}]
    if position is not None:
        layers.append({"type": "title", "text": "Title", "position": position, "zoomDirection": None})
    spec = write_spec(tmp_path, {"width": W, "height": H, "fps": 12, "clips": [{"duration": 1, "layers": layers}]},
                      f"{tag}.json5")
    cfg = config(spec, ["detector=saliency", f"job.output={tmp_path / tag}.mp4"])
    render(cfg, str(tmp_path / f"run-{tag}"), quiet=True)
    return ffmpeg_decode(tmp_path / f"{tag}.mp4", W, H)


@pytest.mark.render
@pytest.mark.parametrize("position,box", [
    # Where Editly puts the text's origin, as fractions: (x, y) and which side of the text it is.
    ("top", (0.5, 0.05, "center", "top")),
    ("bottom-right", (0.95, 0.95, "right", "bottom")),
    ("center-left", (0.05, 0.5, "left", "center")),
    ({"x": 0.3, "y": 0.7, "originX": "center", "originY": "center"}, (0.3, 0.7, "center", "center")),
])
def test_an_editly_title_lands_where_its_position_says(tmp_path, position, box):
    without = rendered_title(tmp_path, None, "without")
    frames = rendered_title(tmp_path, position, "with")
    assert frames.shape == without.shape == (12, H, W, 3)
    changed = np.abs(frames.astype(int) - without.astype(int)).max(axis=-1) > 60
    assert changed.sum(axis=(1, 2)).min() > 0, "the title is on every frame"
    ys, xs = np.nonzero(changed[6])
    left, right, top, bottom = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    x, y, ox, oy = box
    measured_x = {"left": left, "center": (left + right) / 2, "right": right}[ox]
    measured_y = {"top": top, "center": (top + bottom) / 2, "bottom": bottom}[oy]
    # The glyphs' ink sits inside the text's block by a few pixels (its padding, the line's leading).
    assert abs(measured_x - x * W) <= 0.03 * W, (measured_x, x * W)
    assert abs(measured_y - y * H) <= 0.06 * H, (measured_y, y * H)


@pytest.mark.render
def test_a_detached_audio_layer_is_heard_from_its_clips_start_plus_its_own(tmp_path):
    """Two half-second cards, the second with a tone from 0.25 s into it: the tone starts at
    0.75 s of the decoded output, at half its level (Editly's final amix: the silent clips'
    sound and the tone, weights 1 and 1)."""
    tone(tmp_path / "tone.wav", 1.0)
    card = {"type": "fill-color", "color": "#203040"}
    spec = write_spec(tmp_path, {"width": 64, "height": 36, "fps": 12, "defaults": {"transition": None},
                                 "clips": [{"duration": 0.5, "layers": [card]},
                                           {"duration": 0.5, "layers": [card, {"type": "detached-audio",
                                                                               "path": "tone.wav", "start": 0.25}]}]})
    out = tmp_path / "out.mp4"
    render(config(spec, ["detector=saliency", f"job.output={out}"]), str(tmp_path / "run"), quiet=True)
    pcm = subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(out), "-map", "0:a", "-ac", "2", "-ar", "48000",
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    x = np.frombuffer(pcm, np.float32)[::2]  # the left channel, as mixed
    rms = np.sqrt((x[: len(x) // 480 * 480].reshape(-1, 480) ** 2).mean(axis=1))  # per 10 ms
    onset = np.flatnonzero(rms > 0.05)[0] * 0.01
    assert abs(onset - 0.75) <= 0.02, onset
    assert rms[:70].max() < 0.01  # silence before it
    assert rms[80:95].mean() == pytest.approx(0.25 / np.sqrt(2), rel=0.1)  # a 0.5 sine at half its level


@pytest.mark.render
def test_a_photo_shown_for_part_of_its_clip_and_a_soundtrack_played_once_as_editly_does(tmp_path):
    """A 2 s clip at 10 fps with the photo from 0.5 to 1 s (clip frames 5 to 10: t = k / 10),
    then a 1 s card, under a 1 s tone without loopAudio: black around the photo, and the tone
    heard for its second, then silence."""
    tone(tmp_path / "tone.wav", 1.0)
    spec = photo_spec(tmp_path, {"width": 160, "height": 90, "fps": 10, "audioFilePath": "tone.wav",
                                 "defaults": {"transition": None},
                                 "clips": [{"duration": 2, "layers": [{**PHOTO, "start": 0.5, "stop": 1.0}]},
                                           {"duration": 1, "layers": [{"type": "fill-color", "color": "#ffffff"}]}]})
    out = tmp_path / "out.mp4"
    render(config(spec, ["detector=saliency", f"job.output={out}"]), str(tmp_path / "run"), quiet=True)
    frames = ffmpeg_decode(out, 160, 90).astype(int)
    assert len(frames) == 30
    mean = frames.mean(axis=(1, 2, 3))
    assert (mean[:5] < 8).all() and (mean[11:20] < 8).all(), mean.round()
    assert (mean[5:11] > 60).all() and (mean[20:] > 240).all(), mean.round()
    pcm = subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(out), "-map", "0:a", "-ac", "2", "-ar", "48000",
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    x = np.frombuffer(pcm, np.float32)[::2]
    rms = np.sqrt((x[: len(x) // 480 * 480].reshape(-1, 480) ** 2).mean(axis=1))  # per 10 ms
    assert rms[5:95].min() > 0.05 and rms[110:290].max() < 0.01, (rms[5:95].min(), rms[110:290].max())


@pytest.mark.unit
def test_the_readme_section_names_every_converted_layer_type():
    text = (ROOT / "docs" / "editly.md").read_text()
    for kind in ("image", "image-overlay", "video", "audio", "detached-audio", "title", "subtitle", "title-background",
                 "news-title", "slide-in-text", "fill-color", "pause", "linear-gradient", "radial-gradient"):
        assert f"`{kind}`" in text, kind
    assert os.path.isfile(EDITLY / "LICENSE")


@pytest.mark.unit
def test_a_bad_override_on_a_spec_names_its_key(tmp_path):
    spec = write_spec(tmp_path, {"clips": [{"layers": [{"type": "pause"}]}]})
    with pytest.raises(ConfigError, match="render.fsp"):
        config(spec, ["render.fsp=3"])


@pytest.mark.unit
def test_the_editly_comparator_reads_the_spec_from_files_both_renderers_read(tmp_path):
    from raypipe.bench.editly import materialised

    written = json.loads(materialised(EXAMPLES / "titles.json5", tmp_path).read_text())
    paths = [layer.get("path") for clip in written["clips"] for layer in clip["layers"] if layer.get("path")]
    assert paths == [str(tmp_path / "coffee.jpg"), str(ASSETS / "logo.png"), str(tmp_path / "astronaut.jpg")]
    assert all(Path(p).is_file() for p in paths)
    assert written["outPath"] == str(tmp_path / "editly.mp4")


def title_pixels(tmp_path, transition: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of titled_clips(transition), rendered and decoded: the mean change the titles
    make (against the same spec without them) over the top third, where the outgoing clip's
    title is, and over the bottom third, the incoming's."""
    spec, decoded = titled_clips(transition), []
    tmp_path.mkdir()
    for tag, clips in (("with", spec["clips"]), ("without", [{**c, "layers": c["layers"][:1]} for c in spec["clips"]])):
        path = write_spec(tmp_path, {**spec, "clips": clips}, f"{tag}.json5")
        out = tmp_path / f"{tag}.mp4"
        render(config(path, ["detector=saliency", f"job.output={out}"]), str(tmp_path / f"run-{tag}"), quiet=True)
        decoded.append(ffmpeg_decode(out, W, H).astype(int))
    change = np.abs(decoded[0] - decoded[1]).max(axis=-1)
    assert len(change) == 30  # Editly's: 20 + 20 - 10
    return change[:, : H // 3].mean(axis=(1, 2)), change[:, 2 * H // 3:].mean(axis=(1, 2))


def rising(values: np.ndarray, full: float) -> bool:
    """Up from about nothing to most of `full`, never down by more than a twentieth of it."""
    return values[0] < 0.15 * full and values[-1] > 0.3 * full and (np.diff(values) > -0.05 * full).all()


@pytest.mark.render
def test_a_clips_title_fades_with_it_through_a_crossfade_and_cuts_with_it_at_a_cut(tmp_path):
    """10 fps, 2 s clips overlapping by 1 s: frames 10 to 19 are the transition. Each title's
    full change is where it is alone: the outgoing's before the overlap, the incoming's after."""
    out, into = title_pixels(tmp_path / "fade", {"name": "fade", "duration": 1})
    full, full_in = out[:10].mean(), into[20:].mean()
    assert full > 1 and full_in > 0.5 and (np.abs(out[:10] - full) < 0.1 * full).all(), out.round(2)
    assert (np.diff(out[9:21]) < 0).all() and out[20:].max() < 0.05 * full, out.round(2)  # fading over the overlap
    # Coming in, the incoming title's change rises (the encoder's alternate frames stepping it unevenly).
    assert into[:10].max() < 0.05 * full_in and rising(into[9:21], full_in), into.round(2)
    out, into = title_pixels(tmp_path / "cut", {"name": "dummy", "duration": 1})  # drawn as a cut, at frame 20
    assert out[:20].min() > 0.9 * full and out[20:].max() < 0.05 * full, out.round(2)
    assert into[:20].max() < 0.05 * full_in and into[20:].min() > 0.9 * full_in, into.round(2)
    out, into = title_pixels(tmp_path / "black", {"name": "fadecolor", "duration": 1})  # out by frame 15, then in
    assert (np.diff(out[9:16]) < 0).all() and out[15:].max() < 0.05 * full, out.round(2)
    # Absent before it, to the encoder's noise over the frames going to black (seen: 0.09 of it).
    assert into[:15].max() < 0.12 * full_in and rising(into[14:21], full_in), into.round(2)


@pytest.mark.unit
def test_a_video_layer_after_a_cut_plays_on_from_where_its_clip_is_there(tmp_path):
    """A boxed video (a layer over black) in the clip after a 1 s cut begins at the cut, 1 s
    into its cut, as the picture of a clip does."""
    shutil.copy(ASSETS / "demo_clip.mp4", tmp_path / "clip.mp4")
    tile = {"type": "video", "path": "clip.mp4", "width": 0.5, "height": 0.5, "cutFrom": 0.5, "cutTo": 2.5}
    spec = write_spec(tmp_path, {"width": W, "height": H, "fps": 10, "defaults": {"transition": {"name": "dummy",
                                                                                               "duration": 1}},
                                 "clips": [{"duration": 2, "layers": [{"type": "fill-color"}]},
                                           {"duration": 2, "layers": [tile]}]})
    layer = convert(spec).fragment["job"]["layers"][0]
    assert (layer["start"], layer["length"], layer["cut_from"]) == (2.0, 1.0, 1.5)
