"""render.variants: one job in several shapes in one run, the sources detected once."""
import pytest

import raypipe
from conftest import compose_job
from media_inputs import ffmpeg_decode
from raypipe.api import config, render_config
from raypipe.detection.faces import find_faces
from raypipe.errors import JobError
from raypipe.plan.variants import named, variant_configs

SHAPES = "render.variants=[{name:wide,width:320,height:180},{name:tall,width:180,height:320}," \
         "{name:square,width:240,height:240}]"


def astronaut(*overrides, variants=None, **job):
    job = {"name": "trip", "segments": [{"source": "sample:astronaut", "duration": 1.0, "effect": "ken_burns"}], **job}
    return config({"job": job, **({"render": {"variants": variants}} if variants else {})},
                  ["detector=saliency", "render.fps=12", "job.audio.path=null", *overrides])


@pytest.mark.unit
def test_each_variant_is_the_job_at_its_size_named_after_it():
    cfg = astronaut("job.output=/videos/trip.mp4", layers=[{"type": "box"}], variants=[
        {"name": "wide", "width": 320, "height": 180},
        {"name": "tall", "width": 180, "height": 320, "layers": [{"type": "text", "text": "Swipe up"}]},
        {"name": "square", "width": 240, "height": 240}])
    (wide, a), (tall, b), (square, c) = [(v.name, v.cfg) for v in variant_configs(cfg)]
    assert (wide, tall, square) == ("wide", "tall", "square")
    assert [(x.render.width, x.render.height) for x in (a, b, c)] == [(320, 180), (180, 320), (240, 240)]
    assert [x.job.output for x in (a, b, c)] == ["/videos/trip-wide.mp4", "/videos/trip-tall.mp4",
                                                  "/videos/trip-square.mp4"]
    assert [x.job.name for x in (a, b, c)] == ["trip-wide", "trip-tall", "trip-square"]
    assert [[layer.type for layer in x.job.layers] for x in (a, b, c)] == [["box"], ["text"], ["box"]]
    assert not any(x.render.variants for x in (a, b, c)) and cfg.render.width == 1280  # the job's own is kept
    assert named("s3://bucket/out/trip.mp4", "tall") == "s3://bucket/out/trip-tall.mp4"


@pytest.mark.unit
@pytest.mark.parametrize("variants,where", [
    ("[{name:a,width:320,height:180},{name:a,width:180,height:320}]", "render.variants[1].name"),
    ("[{name:a/b,width:320,height:180}]", "render.variants[0].name"),
    ("[{name:a,width:321,height:180}]", "render.variants[0].width"),
    ("[{name:a,width:320,height:0}]", "render.variants[0].height"),
])
def test_a_bad_variant_fails_naming_its_key(variants, where):
    with pytest.raises(JobError) as e:
        variant_configs(astronaut(f"render.variants={variants}"))
    assert e.value.where == where


@pytest.mark.render
@pytest.mark.parametrize("cache", [True, False])
def test_variants_render_one_video_each_detecting_once_with_the_face_whole_in_each(tmp_path, cache, monkeypatch):
    from raypipe.detection import detector

    calls, real = [], detector.detect_all

    def counted(cfg, sources, *args, **kwargs):
        calls.append(sources)
        return real(cfg, sources, *args, **kwargs)

    monkeypatch.setattr(detector, "detect_all", counted)
    cfg = astronaut(SHAPES, f"render.cache={str(cache).lower()}", layers=[{"type": "text", "text": "12 Elm Street",
                                                                           "position": "auto"}])
    result = render_config(cfg, str(tmp_path / "run"))
    assert [v.video for v in result.variants] == [str(tmp_path / "run" / name / f"trip-{name}.mp4")
                                                  for name in ("wide", "tall", "square")]
    assert result.video == result.variants[0].video
    # One engine for the three: the photo is detected once, for the first; the others know it.
    assert calls == [("sample:astronaut",)]
    assert [v.report["detect_s"] > 0 for v in result.variants] == [True, False, False]
    for v, (w, h) in zip(result.variants, ((320, 180), (180, 320), (240, 240))):
        frames = ffmpeg_decode(v.video, w, h)
        assert len(frames) == 12
        faces = find_faces(frames[6])
        assert len(faces) == 1, (v.video, faces)
        x0, y0, x1, y1 = faces[0]
        assert x0 > 0 and y0 > 0 and x1 < w and y1 < h, (v.video, faces)
    assert not (tmp_path / "run" / "variants-cache").exists()  # render.cache=false: nothing kept


@pytest.mark.render
def test_a_batch_renders_every_variant_of_every_row_with_a_record_each(tmp_path):
    import json

    from raypipe import media

    rows = tmp_path / "rows.csv"
    rows.write_text("id,address,price,photos\na,1 Elm St,$1,sample:astronaut\nb,2 Oak Ln,$2,sample:coffee\n")
    args = ["detector=saliency", "render.fps=12", "batch.each.duration=1.0", "batch.each.transition_duration=0.2",
            "render.variants=[{name:wide,width:160,height:90},{name:tall,width:90,height:160}]",
            f"batch.allowed_roots=[{tmp_path}]", f"batch.root={tmp_path / 'out'}"]
    report = raypipe.render_batch("listing", rows, args, run_dir=tmp_path / "r")
    assert (report.done, report.failed) == (4, 0)
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["variant"], r["status"]) for r in records) == [
        ("a", "tall", "done"), ("a", "wide", "done"), ("b", "tall", "done"), ("b", "wide", "done")]
    for r in records:
        assert r["output"] == str(tmp_path / "out" / "videos" / f"{r['id']}-{r['variant']}.mp4")
        info = media.probe(r["output"])
        assert (info.width, info.height) == ((160, 90) if r["variant"] == "wide" else (90, 160))
    (tmp_path / "out" / "videos" / "b-tall.mp4").unlink()
    again = raypipe.render_batch("listing", rows, args, run_dir=tmp_path / "again")
    assert sorted((r.id, r.variant, r.status) for r in again.records) == [
        ("a", "tall", "skipped"), ("a", "wide", "skipped"), ("b", "tall", "done"), ("b", "wide", "skipped")]
    assert compose_job().render.variants == []


TALL_BAD = [{"name": "wide", "width": 160, "height": 90},
            {"name": "tall", "width": 90, "height": 160,
             "layers": [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "position": "middle"}]}]


@pytest.mark.unit
@pytest.mark.parametrize("layer,where", [
    ({"type": "text", "text": "b", "position": "middle"}, "render.variants[1].layers[1].position"),
    # Found only once the timeline is planned: the 1 s it is on is shorter than its in and out.
    ({"type": "text", "text": "b", "in": {"duration": 0.8}, "out": {"duration": 0.8}}, "render.variants[1].layers[1].in"),
    ({"type": "image", "source": "sample:no_such_photo"}, "render.variants[1].layers[1].source"),
])
def test_a_variants_own_bad_layer_fails_before_any_work_under_its_own_path(tmp_path, layer, where):
    variants = [TALL_BAD[0], {**TALL_BAD[1], "layers": [{"type": "text", "text": "a"}, layer]}]
    cfg = astronaut(layers=[{"type": "box"}], variants=variants)
    with pytest.raises(JobError) as e:
        variant_configs(cfg)
    assert e.value.where == where
    with pytest.raises(JobError) as rendered:  # the render: nothing made, the wide variant included
        render_config(cfg, str(tmp_path / "run"))
    assert rendered.value.where == where
    assert not list(tmp_path.rglob("*.mp4"))


@pytest.mark.unit
def test_a_batch_checks_every_variants_layers_of_every_row_before_any_work_and_in_a_dry_run(tmp_path):
    from omegaconf import OmegaConf

    from raypipe.batch.run import checked
    from raypipe.config import AnimationCfg

    rows = tmp_path / "rows.csv"
    rows.write_text("id,label,photo,position\na,x,sample:astronaut,top\nb,y,sample:coffee,middle\n")
    variants = [TALL_BAD[0], {**TALL_BAD[1], "layers": [{"type": "text", "text": "${row:label}",
                                                          "position": "${row:position}"}]}]
    cfg = config({"job": {"name": "rows", "segments": [{"source": "${row:photo}", "duration": 1.0}],
                          "layers": [{"type": "text", "text": "${row:label}"}]}, "render": {"variants": variants}},
                 ["detector=saliency", "render.fps=12", "job.audio.path=null", f"batch.rows={rows}",
                  f"batch.root={tmp_path / 'out'}", f"batch.allowed_roots=[{tmp_path}]"])
    for sources in (False, True):  # the batch's checks before any work, and a dry run's
        _, videos, failed, _ = checked(cfg, str(tmp_path / "run"), skip_published=False, sources=sources)
        assert [v.row.id for v in videos] == ["a"]
        assert [(r.id, r.error.split(": unknown")[0]) for r in failed] == [
            ("b", "row 2 (id b): render.variants[1].layers[0].position")]
    # Found only once the sources are read: a dry run names it under the variant's own key.
    cfg.render.variants[1].layers[0]["in"] = OmegaConf.structured(AnimationCfg(duration=5.0))
    cfg.render.variants[1].layers[0].position = "top"
    _, videos, failed, _ = checked(cfg, str(tmp_path / "run"), skip_published=False)
    assert [(r.id, r.error.split(": its in")[0]) for r in failed] == [
        ("a", "row 1 (id a) variant tall: render.variants[1].layers[0].in"),
        ("b", "row 2 (id b) variant tall: render.variants[1].layers[0].in")]


@pytest.mark.unit
def test_the_batch_summary_counts_rows_and_videos_apart():
    from raypipe.batch.manifest import BatchReport, Record, RowStatus

    def report(records, rows, variants):
        return BatchReport("rows.csv", "root", "manifest", rows, 0, 0, 0, 0, 1.0, 0.0, "saliency", 0, 0, "driver",
                           False, 0.0, 0.0, [], {}, records, variants)

    done, failed = RowStatus.DONE, RowStatus.FAILED
    assert report([Record("a", 1, done, "a-wide.mp4", variant="wide"),
                   Record("a", 1, failed, None, variant="tall")], 1, 2).summary() == \
        "1 done, 0 skipped, 1 failed of 2 videos (1 row x 2 variants)"
    # A row that failed its checks made none of its variants' videos.
    assert report([Record("a", 1, failed, None)], 1, 2).summary() == \
        "0 done, 0 skipped, 2 failed of 2 videos (1 row x 2 variants)"
    assert report([Record("a", 1, done, "a.mp4"), Record("b", 2, failed, None)], 2, 0).summary() == \
        "1 done, 0 skipped, 1 failed of 2 rows"


@pytest.mark.unit
def test_a_size_given_with_variants_scales_each_to_fit_inside_it_keeping_its_aspect():
    big = [{"name": "wide", "width": 1280, "height": 720}, {"name": "tall", "width": 720, "height": 1280},
           {"name": "square", "width": 1080, "height": 1080}]
    preview = [(v.name, v.cfg) for v in variant_configs(astronaut("render.width=320", "render.height=180", variants=big))]
    assert [(name, c.render.width, c.render.height) for name, c in preview] == [
        ("wide", 320, 180), ("tall", 102, 180), ("square", 180, 180)]
    # The schema's size (none given) leaves each variant at its own.
    assert [(v.cfg.render.width, v.cfg.render.height) for v in variant_configs(astronaut(variants=big))] == [
        (1280, 720), (720, 1280), (1080, 1080)]


@pytest.mark.unit
def test_a_plain_renders_variant_names_itself_in_its_layers_warnings(tmp_path, caplog):
    from raypipe.engine.driver import JobVideo, detect
    from raypipe.engine.task import check_captions

    over_faces = {"type": "box", "width": 0.9, "height": 0.9, "opacity": 0.5}
    cfg = astronaut(layers=[over_faces], variants=[
        {"name": "wide", "width": 320, "height": 180},
        {"name": "tall", "width": 180, "height": 320, "layers": [over_faces]}])
    said = []
    for v in variant_configs(cfg):
        p = JobVideo(v.cfg, str(tmp_path / v.name), told=v.told).plan()
        caplog.clear()
        check_captions(p, detect(v.cfg.detector, p, None)[0])
        said += [r.getMessage().split(" at position")[0] for r in caplog.records if "covers a face" in r.getMessage()]
    assert said == ["variant wide: job.layers[0]:", "variant tall: render.variants[1].layers[0]:"]
