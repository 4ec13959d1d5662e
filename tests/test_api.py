"""The Python API: the CLI's commands as functions, on a job name, a YAML file or a dict."""
import os
import re

import pytest

import raypipe
from conftest import ROOT
from raypipe import media
from raypipe.plan.validate import prepare
from test_render import FIXTURE_FRAMES

FIXTURE = ROOT / "tests" / "conf" / "job" / "fixture.yaml"


@pytest.mark.render
def test_a_job_from_a_yaml_file_renders_like_the_cli(tmp_path):
    result = raypipe.render(FIXTURE, ["detector=saliency"], run_dir=tmp_path / "run")
    assert result.video == str(tmp_path / "run" / "fixture.mp4") and result.run_dir == str(tmp_path / "run")
    assert media.count_frames(result.video) == result.report["frames"] == FIXTURE_FRAMES
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


@pytest.mark.render
def test_a_job_built_in_python(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = {"name": "built", "segments": [{"source": "sample:astronaut", "duration": 0.5, "effect": "ken_burns"},
                                         {"source": "sample:rocket", "duration": 0.5, "effect": "reframe"}]}
    result = raypipe.render(job, ["detector=saliency", "render.width=320", "render.height=180", "render.fps=24"])
    assert result.video.startswith(str(tmp_path / "outputs" / "built")) and result.report["frames"] == 24
    found = raypipe.detect(job, ["detector=saliency"])
    assert found.detector == "saliency" and [d["source"] for d in found.detections] == ["sample:astronaut",
                                                                                        "sample:rocket"]
    [still] = raypipe.preview(job, ["detector=saliency"], at=[0.75])
    assert still.endswith("frame-000022.png")  # 0.75 s at the default 30 fps
    small = raypipe.preview(job, ["detector=saliency"], scale=0.5)
    assert media.probe(small.video).width == 640


@pytest.mark.unit
@pytest.mark.parametrize("job,overrides,message", [
    ({"name": "x", "segmens": []}, [], "job.segmens: Key 'segmens' not in 'JobCfg'"),
    ("demo", ["render.fsp=24"], "render.fsp: Key 'fsp' not in 'RenderCfg'"),
    ("nope", [], "job: no config named 'nope'"),
    ("/no/such/job.yaml", [], "job: no such file: /no/such/job.yaml"),
    ({"name": "x", "segments": [{"source": "/no/such.png", "duration": 1}]}, ["detector=saliency"],
     "job.segments[0].source: no such file: /no/such.png"),
], ids=["typo in a dict", "typo in an override", "unknown job", "missing file", "missing source"])
def test_bad_input_is_the_clis_one_line_error(tmp_path, job, overrides, message):
    with pytest.raises(raypipe.RaypipeError) as e:
        raypipe.render(job, overrides, run_dir=tmp_path / "run")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").glob("*.mp4"))


JOB_FILES = [
    ("job:\n  name: trip\n  segments:\n    - {source: sample:chelsea, duration: 1}\n"
     "    - {source: sample:coffee, duration: 1}\n    - {source: sample:rocket, duration: 1, caption: {txt: hi}}\n",
     "job.segments[2].caption.txt: Key 'txt' not in 'CaptionCfg'; did you mean 'text'?"),
    ("job:\n  name: trip\n  segments:\n    - {source: sample:chelsea, durration: 1}\n",
     "job.segments[0].durration: Key 'durration' not in 'SegmentCfg'; did you mean 'duration'?"),
    ("job:\n  name: trip\n  audio: {pth: song.m4a}\n", "job.audio.pth: Key 'pth' not in 'AudioCfg'; did you mean 'path'?"),
    ("job:\n  name: trip\nrender: {widht: 640}\n", "render.widht: Key 'widht' not in 'RenderCfg'; did you mean 'width'?"),
    ("job:\n  name: trip\n  segments:\n    - source: sample:chelsea\n      duration 1\n",
     "{file}:5:7: YAML syntax error: while scanning a simple key; could not find expected ':'"),
    ("job:\n  name: trip\n  segments: [\n", "{file}:4:1: YAML syntax error: while parsing a flow node"),
    ("- sample:chelsea\n", "{file}: a job file holds a mapping"),
    ("job:\n  name: trip\n  segments:\n    - {source: photos/none.jpg, duration: 1}\n",
     "job.segments[0].source: no such file: {folder}/photos/none.jpg"),
]


@pytest.mark.unit
@pytest.mark.parametrize("text,message", JOB_FILES, ids=[m.split(":")[0].replace("{file}", "file") + "|" + m.split(": ")[-1][:30]
                                                         for _, m in JOB_FILES])
def test_a_bad_job_file_is_one_line_with_the_keys_full_path(tmp_path, monkeypatch, text, message):
    """Keys inside a list's items are named from the top (OmegaConf names them from the
    item down), the schema offers the nearest field, and YAML errors start with file:line:column."""
    monkeypatch.chdir(ROOT)  # relative sources are the job file's, not the working directory's
    job = tmp_path / "trip.yaml"
    job.write_text(text)
    with pytest.raises(raypipe.RaypipeError) as e:
        prepare(raypipe.api.config(job), str(tmp_path / "run"))
    assert str(e.value).startswith(message.format(file=job, folder=tmp_path)) and "\n" not in str(e.value)


@pytest.mark.unit
def test_a_job_file_needs_no_package_line_nor_a_job_level_and_its_paths_are_its_folders(tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "beach.png").write_bytes(b"")  # only its path is looked at here
    with_level = tmp_path / "with_level.yaml"
    with_level.write_text("job:\n  name: trip\n  audio: {path: music/song.m4a}\n  segments:\n"
                          "    - {source: photos/beach.png, caption: {text: hi, font: fonts/my.ttf}}\n"
                          "    - {source: sample:chelsea, caption: {text: hi, font: DejaVu Sans}}\n"
                          "    - {source: /abs/clip.mp4}\n    - {source: 's3://bucket/clip.mp4'}\n"
                          "    - {source: '~/clip.mp4'}\n")
    job_level = tmp_path / "job_level.yaml"
    job_level.write_text("name: trip\naudio: {path: music/song.m4a}\nsegments:\n"
                         "  - {source: photos/beach.png, caption: {text: hi, font: fonts/my.ttf}}\n"
                         "  - {source: sample:chelsea, caption: {text: hi, font: DejaVu Sans}}\n"
                         "  - {source: /abs/clip.mp4}\n  - {source: 's3://bucket/clip.mp4'}\n  - {source: '~/clip.mp4'}\n")
    monkeypatch.chdir(ROOT)
    for file in (with_level, job_level):
        job = raypipe.api.config(file).job
        assert job.audio.path == str(tmp_path / "music" / "song.m4a")
        assert [s.source for s in job.segments] == [str(tmp_path / "photos" / "beach.png"), "sample:chelsea",
                                                    "/abs/clip.mp4", "s3://bucket/clip.mp4", "~/clip.mp4"]
        assert [s.caption.font for s in job.segments[:2]] == [str(tmp_path / "fonts" / "my.ttf"), "DejaVu Sans"]


@pytest.mark.unit
def test_an_output_whose_folder_refuses_the_lock_is_one_line_naming_job_output(tmp_path, monkeypatch):
    """A folder the check before the render finds writable, that refuses the output's lock
    (root on sysfs): the check is taken away so that the lock meets it whoever runs the test."""
    from raypipe.plan import validate

    monkeypatch.setattr(validate, "_check_local_dir_writable", lambda folder: None)
    output = "/sys/raypipe-test/video.mp4"
    job = {"name": "locked", "segments": [{"source": "sample:astronaut", "duration": 0.5}]}
    with pytest.raises(raypipe.RaypipeError) as e:
        raypipe.render(job, ["detector=saliency", f"job.output={output}"], run_dir=tmp_path / "run")
    assert e.value.where == "job.output"
    assert re.fullmatch(rf"job\.output: cannot write {output} \([A-Z][a-z ]+\)", str(e.value)), str(e.value)
    assert not os.path.exists("/sys/raypipe-test") and not list((tmp_path / "run").glob("*.mp4"))
