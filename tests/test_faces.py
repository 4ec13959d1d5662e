"""Faces as a framing signal: found with OpenCV's cascades, carried with the subject through
the cache and the object store, and kept whole by every camera."""
import numpy as np
import pytest
from omegaconf import OmegaConf

from raypipe.config import DetectorCfg
from raypipe.detection.detections import Detections
from raypipe.detection.detector import detect_all, expand
from raypipe.detection.faces import find_faces
from raypipe.frames.effects import EFFECTS, Shot, make_params
from raypipe.media import load_image

pytestmark = pytest.mark.slow  # Haar cascades over whole photos and video keyframes: seconds each


def test_a_face_is_found_as_a_whole_head_and_nothing_is_found_where_there_is_none():
    [head] = find_faces(load_image("sample:astronaut"))
    x0, y0, x1, y1 = head
    assert x0 < 165 and y0 < 40 and x1 > 285 and 165 < y1 < 230  # hair to chin, by hand: 150-300 x 15-170
    assert find_faces(load_image("sample:coffee")) == () and find_faces(load_image("sample:rocket")) == ()
    [profile] = find_faces(load_image("sample:camera"))  # a face in profile, from the other cascade
    assert profile[0] < 200 < profile[2] and profile[1] < 100 < profile[3]


def test_faces_travel_with_the_subject_and_the_report_says_they_framed_it():
    found, _ = detect_all(OmegaConf.structured(DetectorCfg(kind="saliency")), ("sample:astronaut", "sample:rocket"),
                          ("a person",))
    packed = Detections.pack(expand(found))
    assert len(packed.subject("sample:astronaut").faces) == 1 and packed.subject("sample:rocket").faces == ()
    assert packed.track("sample:astronaut").at(0.0).key == packed.subject("sample:astronaut").key
    summary = {s["source"]: s for s in packed.summary()}
    assert summary["sample:astronaut"]["framed_by"] == "saliency+faces" and summary["sample:rocket"]["faces"] == 0


@pytest.mark.parametrize("out", [(1920, 1080), (1080, 1920)], ids=["16:9", "9:16"])
def test_every_camera_keeps_the_faces_whole_all_through_its_shot(out):
    image = load_image("sample:astronaut")
    found, _ = detect_all(OmegaConf.structured(DetectorCfg(kind="saliency")), ("sample:astronaut",), ("a person",))
    subject = expand(found)["sample:astronaut"]
    for effect in EFFECTS:
        shot = Shot(effect, make_params(effect, {}), *out, 3.0)
        for p in np.linspace(0, 1, 21):
            x0, y0, x1, y1 = shot.screen_box((512, 512), subject.box, float(p), region=subject.key, key=subject.key)
            assert x0 >= -0.5 and y0 >= -0.5 and x1 <= out[0] + 0.5 and y1 <= out[1] + 0.5, (effect, p)
    assert image.shape == (512, 512, 3)


def test_a_video_holds_a_face_through_keyframes_that_miss_it_for_up_to_a_second():
    from raypipe.detection.detections import Subject

    mask = np.zeros((90, 160), np.uint8)
    head = (40.0, 0.0, 90.0, 60.0)
    items = {"clip": [(t, Subject((10.0, 0.0, 150.0, 90.0), mask, 0.5, "test", (160, 90), faces))
                      for t, faces in ((0.0, (head,)), (0.5, ()), (1.0, ()), (1.5, ()))]}
    track = Detections.pack(items).track("clip")
    assert track.key_at(0.0) == track.key_at(0.9) == head
    assert track.key_at(1.5) is None  # 1.5 s after it was last seen


def test_a_moving_face_glides_between_keyframes_instead_of_jumping_at_each():
    from raypipe.detection.detections import Subject

    mask = np.zeros((90, 160), np.uint8)
    speed = 200.0  # px/s; keyframes every 0.5 s, so the nearest keyframe's face is up to 50 px off

    def head(t):
        return (100.0 + speed * t, 50.0, 200.0 + speed * t, 170.0)

    items = {"clip": [(t, Subject((0.0, 0.0, 1280.0, 720.0), mask, 0.5, "test", (1280, 720), (head(t),)))
                      for t in np.arange(0.0, 3.01, 0.5)]}
    track = Detections.pack(items).track("clip")
    for t in np.arange(0.0, 3.001, 1 / 30):
        assert np.allclose(track.key_at(t), head(t), atol=0.5), t
    assert track.key_at(3.5) == pytest.approx(head(3.0), abs=0.5)  # held where it was last seen


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_phone_photo_stored_sideways_has_its_face_found_upright(tmp_path, orientation):
    from media_inputs import exif_jpeg
    from raypipe.detection.faces import iou

    path, upright = exif_jpeg(tmp_path, orientation, picture=load_image("sample:astronaut")[:, 64:448])
    found, _ = detect_all(OmegaConf.structured(DetectorCfg(kind="saliency")), (str(path),), ("a person",))
    [head] = expand(found)[str(path)].faces
    [expected] = find_faces(upright)  # on the picture as the phone showed it
    assert iou(head, expected) > 0.9, (head, expected)


def test_a_phone_video_stored_sideways_has_its_face_found_upright_on_every_keyframe(tmp_path):
    from media_inputs import rotated_clip
    from raypipe.detection.faces import iou

    portrait = load_image("sample:astronaut")[:, 64:448]  # 384 x 512, as the phone showed it
    path, upright = rotated_clip(tmp_path, 90, frames=np.repeat(np.rot90(portrait, -1)[None], 12, axis=0))
    assert upright.shape[1:3] == (512, 384)
    found, _ = detect_all(OmegaConf.structured(DetectorCfg(kind="saliency", keyframe_rate=4.0)), (str(path),),
                          ("a person",), video_ranges={str(path): ((0.0, 0.5),)})
    keyframes = expand(found)[str(path)]
    [expected] = find_faces(portrait)
    assert len(keyframes) >= 2
    for t, subject in keyframes:
        assert len(subject.faces) == 1 and iou(subject.faces[0], expected) > 0.85, (t, subject.faces)


def test_a_still_looked_at_ahead_is_detected_from_its_look_and_one_made_for_another_side_is_made_again(tmp_path):
    """A batch looks at its rows' stills (decoded, faces found) on another core while the model
    loads; the detector then takes each from its look, as it would have found it itself."""
    import cv2

    from raypipe.detection.detector import look, presumed_side
    from raypipe.errors import MediaError

    settings = OmegaConf.structured(DetectorCfg(kind="saliency"))
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(load_image("sample:astronaut"), cv2.COLOR_RGB2BGR))
    uri = str(path)
    ahead = look(settings, uri, presumed_side(settings))
    assert ahead.side == 640 and ahead.size == (512, 512) and len(ahead.faces) == 1
    itself, _ = detect_all(settings, (uri,), ("a person",))
    path.unlink()  # the look holds all that the detector needs
    from_look, info = detect_all(settings, (uri,), ("a person",), looks={uri: ahead})
    got, expected = expand(from_look)[uri], expand(itself)[uri]
    assert (got.box, got.faces) == (expected.box, expected.faces) and np.array_equal(got.mask, expected.mask)
    assert info.bytes_read == 0
    with pytest.raises(MediaError, match="astronaut.png"):  # a look for another side: the still is read again
        detect_all(settings, (uri,), ("a person",), looks={uri: look(settings, "sample:astronaut", 128)})


def test_faces_are_found_from_many_threads_at_once_as_from_one():
    """A batch looks at a row's photos side by side: each thread has its own cascades (one
    CascadeClassifier run from two threads at once crashes the process)."""
    from concurrent.futures import ThreadPoolExecutor

    images = [load_image("sample:astronaut"), load_image("sample:camera"), load_image("sample:coffee")] * 4
    alone = [find_faces(img) for img in images[:3]] * 4
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(find_faces, images)) == alone
