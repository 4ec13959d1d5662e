"""The Python API: the CLI's commands as functions, on a job name, a YAML file or a dict."""
import pytest

import raypipe
from conftest import ROOT
from raypipe import media
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
