"""A row of a table made into its video's config: its text stays text, and a row made from
an earlier row of its shape is the config a merge would make."""
import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from raypipe.api import compose
from raypipe.batch import videos
from raypipe.batch.rows import Row
from raypipe.batch.videos import _Typed, row_config
from raypipe.errors import JobError, RaypipeError

pytestmark = pytest.mark.unit


def listing_row(number, **fields):
    return Row(number, str(number), {"address": "1 Elm St", "price": "$1", "photos": "a.png|b.png", **fields},
               fields.pop("job", None), csv=True)


@pytest.fixture(scope="module")
def template():
    # The listing template shows its row's address and price as layers; a caption made of them is
    # what these tests read back. Its end card (batch.each.after) is left out: these rows are their photos.
    return compose(["+job=listing", "batch.rows=rows.csv", "detector=saliency", "batch.each.after=[]",
                    "batch.each.caption='${row:address} · ${row:price}'"])


@pytest.fixture(scope="module")
def listing():
    return compose(["+job=listing", "batch.rows=rows.csv", "detector=saliency"])


def test_a_rows_text_is_text_never_an_interpolation_resolved_on_the_driver(template, monkeypatch):
    monkeypatch.setenv("RAYPIPE_SECRET", "hunter2")
    row = Row(1, "evil", {"address": "${oc.env:RAYPIPE_SECRET}", "price": r"C:\${x}", "photos": "a.png"}, None,
              csv=True)
    assert row_config(template, row, "/photos").job.segments[0].caption.text == r"${oc.env:RAYPIPE_SECRET} · C:\${x}"
    # nor in a row's own job
    row = Row(2, "own", {"address": "x", "price": "y", "photos": "a.png"}, {"segments": [{"source": "b.png", "caption": {"text": "${oc.env:RAYPIPE_SECRET}"}}]},
              csv=False)
    cfg = row_config(template, row, "/photos")
    assert [(s.source, s.caption.text) for s in cfg.job.segments] == [("/photos/b.png", "${oc.env:RAYPIPE_SECRET}")]
    assert "hunter2" not in OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True))


def test_rows_of_one_shape_are_made_as_a_merge_makes_them(template, monkeypatch):
    rows = [listing_row(1), listing_row(2, address="2 Oak Ln", price=7, photos="c.png|sample:coffee"),
            listing_row(3, address="3 Ash Ct")]
    made = [row_config(template, row, "/photos") for row in rows]
    monkeypatch.setattr(videos, "_typed", _Typed(shapes=0))  # remembers no shape: every node merged
    for row, cfg in zip(rows, made):
        assert OmegaConf.to_yaml(cfg) == OmegaConf.to_yaml(row_config(template, row, "/photos"))
    assert [s.source for s in made[1].job.segments] == ["/photos/c.png", "sample:coffee"]
    assert made[1].job.segments[0].caption.text == "2 Oak Ln · 7"
    assert made[0].job.segments[0].caption.text == "1 Elm St · $1"  # rows never share a node
    assert made[0].job.segments[0] is not made[2].job.segments[0]


def test_a_value_assigned_into_a_row_of_a_known_shape_is_converted_and_refused_as_a_merge_would():
    typed = _Typed()
    good = {"render": {"width": 640, "fps": "30"}, "job": {"segments": [{"source": "a.png", "duration": 1.0}]}}
    typed(good)  # the shape is known from here on
    converted = typed({"render": {"width": "320", "fps": "25"}, "job": {"segments": [{"source": "b", "duration": 2}]}})
    assert (converted.render.width, converted.job.segments[0].duration) == (320, 2.0)
    assert OmegaConf.to_yaml(converted) == OmegaConf.to_yaml(_Typed(shapes=0)(
        {"render": {"width": "320", "fps": "25"}, "job": {"segments": [{"source": "b", "duration": 2}]}}))
    bad = {"render": {"width": 640, "fps": "30"}, "job": {"segments": [{"source": "a.png", "duration": "long"}]}}
    errors = []
    for make in (typed, _Typed(shapes=0)):
        with pytest.raises(ValidationError) as e:
            make(bad)
        errors.append((e.value.full_key, str(e.value).splitlines()[0]))
    assert errors[0] == errors[1] and "long" in errors[0][1]


def test_a_row_that_is_not_a_plain_value_is_refused_naming_the_row_and_field(template):
    with pytest.raises(JobError, match=r"row 1.address: must be a plain value"):
        row_config(template, listing_row(1, address={"street": "x"}), "/photos")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_what_an_earlier_run_published_is_found_with_a_listing_per_folder_not_a_request_per_row(
        where, tmp_path, monkeypatch, request):
    from raypipe.storage import Storage

    root = str(tmp_path) if where == "local" else "s3://renders/published"
    for name in ("a.mp4", "b.mp4.tmp-1a2b", "sub/c.mp4"):
        if where == "local":
            (tmp_path / name).parent.mkdir(exist_ok=True)
            (tmp_path / name).write_bytes(b"x")
        else:
            request.getfixturevalue("s3")[1].put_object(Bucket="renders", Key=f"published/{name}", Body=b"x")
    listed = []
    files = Storage.files
    monkeypatch.setattr(Storage, "files", lambda self, *a, **k: listed.append(self.root) or files(self, *a, **k))
    published = videos.Published()
    found = {name: published(f"{root}/{name}") for name in ("a.mp4", "b.mp4", "c.mp4", "sub/c.mp4", "d.mp4")}
    assert found == {"a.mp4": True, "b.mp4": False, "c.mp4": False, "sub/c.mp4": True, "d.mp4": False}
    assert listed == [root, f"{root}/sub"]


LEAVING = ["file://{allowed}/../private.png", "file://{allowed}/%2E%2E/private.png", "file://otherhost{allowed}/x.png",
           "s3://bucket/allowed/x.png?endpoint_override=attacker.example:9000&scheme=http",
           "s3://bucket/allowed/../other/x.png", "s3://bucket/allowed-not/x.png", "{allowed}/../private.png"]
STAYING = ["file://{allowed}/x.png", "file://{allowed}/a%20b.png", "s3://bucket/allowed/sub/x.png", "{allowed}/x.png"]


@pytest.mark.parametrize("source", LEAVING + STAYING)
def test_a_rows_source_outside_its_roots_is_refused_naming_the_row_however_it_is_spelt(template, tmp_path, source):
    """allowed_roots holds against `..` (percent-encoded too) and against a URI's query, from
    which pyarrow would take an endpoint of the row's choosing for the driver's S3 client."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    row = listing_row(7, photos=source.format(allowed=allowed))
    check = lambda: videos.check(template, row, str(tmp_path / "out"), str(allowed),  # noqa: E731
                                 [str(allowed), "s3://bucket/allowed"], str(tmp_path / "run"), sources=False)
    if source in STAYING:
        assert check().output.endswith("/7.mp4")
        return
    with pytest.raises(JobError) as e:
        check()
    assert str(e.value).startswith(f"{row.where}: job.segments[0].source: ") and "outside batch.allowed_roots" in str(
        e.value)


@pytest.mark.parametrize("rid", ["y/", "a/b", "..", ".hidden", "tab\there", "x" * 201])
def test_an_id_that_is_not_a_plain_name_fails_its_row_alone(template, tmp_path, rid):
    """An id names its run folder: `y` and `y/` would share one (and delete each other's
    chunks), and `videos/y/.mp4` is no file name."""
    row = Row(3, rid, {"address": "x", "price": "y", "photos": "a.png"}, None, csv=True)
    with pytest.raises(JobError) as e:
        videos.check(template, row, str(tmp_path / "out"), str(tmp_path), [str(tmp_path)], str(tmp_path / "run"),
                     sources=False)
    assert e.value.where in (f"{row.where}.id", f"{row.where}.output") and "\n" not in str(e.value)
    assert videos.check(template, Row(4, "elm-12 Oak St", row.fields, None, csv=True), str(tmp_path / "out"),
                        str(tmp_path), [str(tmp_path)], str(tmp_path / "run"), sources=False).output.endswith(
        "/videos/elm-12 Oak St.mp4")


def test_an_output_named_by_an_empty_field_is_refused_for_its_row(template, tmp_path):
    row = Row(5, "5", {"address": "x", "price": "", "photos": "a.png"}, None, csv=True)
    with pytest.raises(JobError, match=r"row 5\.output: 'videos/\.mp4' is not a plain file name"):
        videos.output_of("videos/{price}.mp4", row, str(tmp_path))


class SaliencyDetector:
    """The engine's detector, as DetectStage calls it, on saliency: keeps what it was asked."""

    remote, seconds, loads = False, 0.0, 0

    def __init__(self):
        self.asked = []

    def warm(self):
        pass

    def close(self):
        pass

    def detect(self, sources, prompts, ranges, cache, looks, moved, on_source=None):
        from raypipe.config import DetectorCfg
        from raypipe.detection.detector import detect_all

        self.asked.append(sources)
        return detect_all(DetectorCfg(kind="saliency"), sources, prompts, ranges, cache)


def looked_rows(template, tmp_path, photos: dict):
    """VideoRuns of rows `{id: photo}`, planned (looked at), none of their sources cached."""
    from types import SimpleNamespace

    import cv2
    import numpy as np

    from raypipe.batch.run import RowVideo
    from raypipe.engine.video import VideoHandle, VideoRun
    from raypipe.errors import CancelToken
    from raypipe.storage import Storage

    runs = []
    for n, (rid, photo) in enumerate(photos.items(), 1):
        cv2.imwrite(str(tmp_path / photo), np.full((90, 160, 3), 99, np.uint8))
        video = videos.check(template, Row(n, rid, {"address": "x", "price": "y", "photos": photo}, None, csv=True),
                             str(tmp_path / "out"), str(tmp_path), [str(tmp_path)], str(tmp_path / "run"))
        run = VideoRun(RowVideo(video, str(tmp_path)), VideoHandle(video.row.id, CancelToken()), CancelToken(),
                       Storage(str(tmp_path)))
        run.plan = videos.plan_video(video, str(tmp_path / "run"))
        run.reuse = SimpleNamespace(detections=None)
        runs.append(run)
    return runs


def test_a_source_gone_after_its_row_was_looked_at_fails_that_row_and_detection_goes_on(template, tmp_path):
    import queue

    from raypipe.engine.detecting import DetectStage, Gate, Looked, NoMore
    from raypipe.errors import CancelToken, MediaError

    runs = looked_rows(template, tmp_path, {"gone": "a.png", "kept": "b.png"})
    (tmp_path / "a.png").unlink()
    looked, out = queue.Queue(), queue.Queue()
    for run in runs:
        looked.put(Looked(run))
    looked.put(NoMore())
    detector = SaliencyDetector()
    DetectStage(looked, out, Gate(CancelToken()), detector, None, shared_passes=False).run()
    first, second = out.get_nowait(), out.get_nowait()
    assert first.id == "gone" and isinstance(first.detected.exception(), MediaError) and "a.png" in str(first.detected.exception())
    assert second.id == "kept" and second.detections().keys == (str(tmp_path / "b.png"),)
    assert detector.asked == [(str(tmp_path / "b.png"),)]


def test_a_video_kept_for_a_shared_pass_is_detected_once_rendering_runs_dry_though_no_other_comes(template,
                                                                                                  tmp_path):
    """The actors' shared passes wait for more videos only while rendering has some to go on
    with: a service's request is detected even if no request comes after it."""
    import queue
    import time

    from raypipe.engine.detecting import DetectStage, Gate, Looked
    from raypipe.errors import CancelToken

    (run,) = looked_rows(template, tmp_path, {"only": "a.png"})
    looked, out = queue.Queue(), queue.Queue()
    out.put("a video ready to render")  # so the stage keeps the next one for a shared pass
    gate = Gate(CancelToken())
    stage = gate.thread("detect", DetectStage(looked, out, gate, SaliencyDetector(), None, shared_passes=True).run)
    try:
        looked.put(Looked(run))
        time.sleep(1.0)  # five of the stage's waits
        assert not run.detected.done()  # kept while the one before waits to render
        out.get_nowait()  # the renderers take it: they have nothing left
        assert out.get(timeout=30) is run and run.detections().keys == (str(tmp_path / "a.png"),)
    finally:
        gate.closed.set()
        stage.join(timeout=10)


def test_a_wrong_typed_value_of_a_row_names_the_row_and_the_full_path(template):
    row = Row(1, "1", {"address": "x", "price": "y", "photos": "a.png"},
              {"layers": [{"type": "text", "text": "hi", "opacity": "high"}]}, csv=False)
    with pytest.raises(JobError) as e:
        row_config(template, row, "/photos")
    # The row's own layers, drawn after the template's six, are named as the row writes them.
    assert str(e.value) == "row 1.job.layers[0].opacity: Value 'high' of type 'str' could not be converted to Float"
    # A field read into the template's layers: the template's node names itself
    made = compose(["+job=listing", "batch.rows=rows.csv", "detector=saliency", "job.layers.2.opacity=${row:fade}"])
    with pytest.raises(JobError) as e:
        row_config(made, listing_row(1, fade="high"), "/photos")
    assert str(e.value).startswith("row 1: job.layers[2].opacity: ") and "'high'" in str(e.value)


def test_a_rows_own_layers_are_drawn_over_the_templates_not_instead(template):
    badge = {"type": "image", "source": "sold.png", "position": "top_left"}
    row = Row(1, "1", {"address": "1 Elm St", "price": "$1", "photos": "a.png"},
              {"layers": [badge], "name": "own"}, csv=False)
    cfg = row_config(template, row, "/photos")
    plain = row_config(template, listing_row(1, photos="a.png"), "/photos")
    assert cfg.job.name == "own"  # its other keys replace the template's
    assert [x.type for x in cfg.job.layers] == [*(x.type for x in plain.job.layers), "image"]
    # The template's address, price, logo and end card, then the row's badge on top.
    assert len(plain.job.layers) == 6 and cfg.job.layers[0].text == "1 Elm St"
    assert (cfg.job.layers[-1].source, cfg.job.layers[-1].position) == ("/photos/sold.png", "top_left")


def test_a_rows_plan_names_its_layers_after_the_row_for_their_warnings_and_errors(template, tmp_path):
    from raypipe.batch.videos import Template, Video, plan_variant, plan_video
    from raypipe.config import VariantCfg
    from raypipe.plan.variants import variants

    row = listing_row(1, photos="sample:astronaut")
    plan = plan_video(Video(row, Template(template, "/photos"), str(tmp_path / "1.mp4")), str(tmp_path))
    assert [x.where for x in plan.segments[0].layers][:3] == ["row 1: job.segments[0].caption", "row 1: job.layers[0]",
                                                              "row 1: job.layers[1]"]
    cfg = row_config(template, row, "/photos")
    cfg.render.variants = [OmegaConf.structured(VariantCfg(name="tall", width=90, height=160))]
    tall, = variants(cfg)
    tall.cfg.job.output = str(tmp_path / "1-tall.mp4")
    video = Video(row, Template(template, "/photos"), str(tmp_path / "1.mp4"))
    assert plan_variant(video, tall, str(tmp_path)).layers[0].where == "row 1 variant tall: job.layers[0]"
    # The row's own layers, after the template's, under the row's own key, and over its variant's
    own = Row(1, "1", {"address": "x", "price": "y", "photos": "sample:astronaut"},
              {"layers": [{"type": "box", "position": "middle"}]}, csv=False)
    with pytest.raises(JobError) as e:
        plan_video(Video(own, Template(template, "/photos"), str(tmp_path / "1.mp4")), str(tmp_path))
    assert e.value.where == "row 1.job.layers[0].position"
    cfg = row_config(template, own, "/photos")
    cfg.render.variants = [OmegaConf.structured(VariantCfg(name="tall", width=90, height=160))]
    tall, = variants(cfg)
    with pytest.raises(JobError) as e:
        plan_variant(Video(own, Template(template, "/photos"), str(tmp_path / "1.mp4")), tall, str(tmp_path))
    assert e.value.where == "row 1.job.layers[0].position (variant tall)"


# ---- the listing's end card, its optional price, its layout --------------------------------

LONG = "Apartment 14B, 1234 North Wellington Boulevard East, Mount Pleasant Heights, NSW 2750"


def test_the_listings_end_card_is_a_card_segment_after_the_photos_and_the_logo_is_drawn_last(listing):
    cfg = row_config(listing, listing_row(1, photos="a.png"), "/photos")
    photo, card = cfg.job.segments
    # The one photo keeps its whole 2.5 s and goes into the card by the template's transition.
    assert (photo.source, photo.duration, photo.transition.type) == ("/photos/a.png", 2.5, "crossfade")
    assert (card.source, card.duration, card.transition.type) == ("color:#1f3a5f", 2.5, "cut")
    assert cfg.job.layers[-1].type == "image" and cfg.job.layers[-1].segment is None  # over everything, throughout
    assert [x.segment for x in cfg.job.layers] == [None, None, -1, -1, -1, None]
    # A template without batch.each.after keeps its listed segments' last transition off, as before.
    bare = compose(["+job=listing", "batch.rows=rows.csv", "detector=saliency", "batch.each.after=[]"])
    last = row_config(bare, listing_row(1), "/photos").job.segments
    assert [s.source for s in last] == ["/photos/a.png", "/photos/b.png"] and last[-1].transition.type == "cut"


@pytest.mark.parametrize("fields", [{"price": ""}, {"price": "  "}, {"price": None}])
def test_an_empty_or_missing_price_reads_the_templates_default(listing, fields):
    row = Row(1, "1", {"address": "1 Elm St", "photos": "a.png", **fields}, None, csv=False)
    cfg = row_config(listing, row, "/photos")
    assert [x.text for x in cfg.job.layers if x.type == "text"] == ["1 Elm St", "Price on application",
                                                                     "1 Elm St", "Price on application"]
    missing = Row(1, "1", {"address": "1 Elm St", "photos": "a.png"}, None, csv=False)  # JSONL without the key
    assert row_config(listing, missing, "/photos").job.layers[1].text == "Price on application"


def test_a_text_of_a_rows_empty_field_draws_nothing_and_later_layers_keep_their_names(tmp_path):
    from raypipe.batch.videos import Template, Video, plan_video

    made = compose(["+job=listing", "batch.rows=rows.csv", "detector=saliency", "render.width=160",
                    "render.height=90", "job.layers.1.text=${row:price}", "job.layers.4.text='${row:price,\"\"}'"])
    row = listing_row(2, price="", photos="sample:astronaut")
    cfg = row_config(made, row, "/photos")
    assert [x.text for x in cfg.job.layers if x.type == "text"] == ["1 Elm St", "1 Elm St"]  # no price, no box
    plan = plan_video(Video(row, Template(made, "/photos"), str(tmp_path / "2.mp4")), str(tmp_path))
    assert [x.where for x in plan.layers] == ["row 2: job.layers[0]", "row 2: job.layers[2]", "row 2: job.layers[3]",
                                              "row 2: job.layers[5]"]
    # A row's own layer after them is still its own layers[0].
    own = Row(2, "2", {"address": "x", "price": "", "photos": "sample:astronaut"},
              {"layers": [{"type": "box", "position": "middle"}]}, csv=False)
    with pytest.raises(JobError) as e:
        plan_video(Video(own, Template(made, "/photos"), str(tmp_path / "2.mp4")), str(tmp_path))
    assert e.value.where == "row 2.job.layers[0].position"
    # Without a default, a missing field is still an error naming the row and the field.
    with pytest.raises(JobError, match=r"row 3.price: no such field"):
        row_config(made, Row(3, "3", {"address": "x", "photos": "a.png"}, None, csv=False), "/photos")


def test_a_rows_default_with_a_comma_must_be_quoted():
    made = compose(["+job=listing", "batch.rows=rows.csv", "job.layers.1.text='${row:price,POA, call us}'"])
    with pytest.raises(RaypipeError, match=r'a default with a comma is quoted: \$\{row:price,"POA, call us"\}'):
        row_config(made, listing_row(1, price=""), "/photos")
    quoted = compose(["+job=listing", "batch.rows=rows.csv", "job.layers.1.text='${row:price,\"POA, call us\"}'"])
    assert row_config(quoted, listing_row(1, price=""), "/photos").job.layers[1].text == "POA, call us"


def rest_boxes(plan, keys):
    """Each layer's box at rest (x0, y0, x1, y1), as planned: its bitmap at its anchor and offset."""
    from raypipe.frames.layers.anchors import origin

    w, h = plan.encode.width, plan.encode.height
    boxes = {}
    for layer in plan.layers:
        key = layer.where.split(": ")[-1]
        if key in keys:
            bh, bw = layer.kind.shapes[0]
            x, y = origin(layer.position, (bh, bw), w, h, layer.margin, layer.offset)
            boxes[key] = (x, y, x + bw, y + bh)
    return boxes


def apart(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize("size", [(320, 180), (180, 320)])
def test_a_long_address_and_the_price_never_overlap_on_the_photos_or_on_the_end_card(tmp_path, size):
    from raypipe.batch.videos import Template, Video, plan_video

    made = compose(["+job=listing", "batch.rows=rows.csv", "detector=saliency", f"render.width={size[0]}",
                    f"render.height={size[1]}", "render.fps=10"])
    row = listing_row(1, address=LONG, price="AU$1,250,000", photos="sample:astronaut|sample:coffee")
    plan = plan_video(Video(row, Template(made, "/photos"), str(tmp_path / "1.mp4")), str(tmp_path))
    boxes = rest_boxes(plan, {f"job.layers[{i}]" for i in range(6)})
    photo_address, price, card_address, card_price, logo = (boxes[f"job.layers[{i}]"] for i in (0, 1, 3, 4, 5))
    assert photo_address[3] - photo_address[1] > 2 * (price[3] - price[1])  # the address wraps to several lines
    assert apart(photo_address, price) and apart(price, logo) and apart(photo_address, logo)
    assert apart(card_address, card_price) and card_address[3] <= size[1] // 2 <= card_price[1]
    for box in boxes.values():
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= size[0] and box[3] <= size[1], (boxes, size)


def test_a_short_rows_layers_cut_by_its_videos_end_are_shortened_not_failed(tmp_path, caplog):
    from raypipe.batch.videos import Template, Video, plan_video

    # One 1.6 s photo and no end card: the address (1.2 s + 3.2 s) is on for 0.4 s of its 0.9 s in and out.
    made = compose(["+job=listing", "batch.rows=rows.csv", "detector=saliency", "render.width=160",
                    "render.height=90", "render.fps=10", "batch.each.duration=1.6", "batch.each.after=[]"])
    plan = plan_video(Video(listing_row(1, photos="sample:astronaut"), Template(made, "/photos"),
                            str(tmp_path / "1.mp4")), str(tmp_path))
    address = plan.layers[0]
    assert (address.start, address.end) == (12, 16)
    assert address.enter.seconds + address.leave.seconds == pytest.approx(0.4)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "shortened" in r.getMessage()]
    assert [s.split(": on for")[0] for s in said] == ["job.layers[0]", "job.layers[1]"], said
