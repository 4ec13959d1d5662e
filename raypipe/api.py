"""The Python API: the CLI's commands as functions, for notebooks and programs.

    import raypipe
    result = raypipe.render("demo", ["render.fps=24"])
    result.video, result.report["stages"], result.run_dir

`job` is a job name (a file in the package's conf/job/), a path to a job YAML (as in
conf/job/), a folder of photos and clips (planned by raypipe.plan.folder; `render` writes
the job it made beside the video, as job.yaml), or a dict built in Python: either the job section itself
({"name": ..., "segments": [...]}) or a config fragment ({"job": {...}, "render": {...}}).
Overrides are the CLI's (`render.width=640`, `detector=saliency`). Errors are the CLI's
one-line `RaypipeError`s.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra import compose as hydra_compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from raypipe.config import hydra_error_line, register, unknown_key, user_cache, yaml_error_line
from raypipe.errors import CancelToken, ConfigError, RaypipeError  # noqa: F401 (RaypipeError: raypipe's)
from raypipe.media.streams import GENERATED
from raypipe.plan.editly import Converted, convert, is_spec
from raypipe.plan.folder import FolderJob, read_folder

CONF = Path(__file__).parent / "conf"
_SIZE = re.compile(r"\+{0,2}render\.(width|height)=(\d+)")
WRITTEN = "_api"  # the name a job written for Hydra has in its folder's job/
log = logging.getLogger("raypipe")


@dataclass(frozen=True)
class Result:
    video: str  # the published video's path or URI
    report: dict  # report.json's content
    run_dir: str  # where report.json, report.html and the config are
    # With render.variants: each variant's Result, in order (this one is the first's).
    variants: tuple[Result, ...] = ()


@dataclass(frozen=True)
class Detected:
    sheet: str  # detections.png
    detections: list[dict]  # per source: box, score, method (and a video's keyframes)
    detector: str
    run_dir: str


def quote_patterns(overrides: Sequence[str]) -> list[str]:
    """`batch.output=videos/{id}.mp4` as a shell passes it: Hydra's override grammar reads
    braces as a dict, so a name pattern is quoted for it."""
    out = []
    for o in overrides:
        key, eq, value = o.partition("=")
        if eq and key.lstrip("+") == "batch.output" and "{" in value and value[:1] not in "'\"":
            o = f"{key}='{value}'"
        out.append(o)
    return out


def compose(overrides: Sequence[str]) -> DictConfig:
    """The config the CLI composes from its overrides (`+job=NAME key=value ...`), checked
    against the schema: the one place raypipe composes Hydra configs."""
    register()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose("config", overrides=quote_patterns(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(hydra_error_line(e)) from None


def config(job: str | os.PathLike | Mapping, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config the CLI would get for `+job=... overrides`, checked against the schema."""
    return compose([*selecting(folder_job(job, overrides) or job, overrides), *overrides])


def spec_size(overrides: Sequence[str]) -> dict:
    """The render's size among the overrides (`render.width=1080`), which an Editly spec is
    converted at: Editly sizes its text from the output's size, raypipe's from the frame's
    height, so text keeps Editly's proportions only when the spec is made at the size rendered."""
    return {m.group(1): int(m.group(2)) for o in overrides if (m := _SIZE.fullmatch(o))}


def converted(job, overrides: Sequence[str] = ()) -> Converted | None:
    """The job of an Editly spec, converted at the overrides' size; None for any other job."""
    if isinstance(job, (str, os.PathLike)) and is_spec(job):
        return convert(job, **spec_size(overrides))
    return None


def selecting(job, overrides: Sequence[str] = ()) -> list[str]:
    """The overrides that select `job` for Hydra: the one way the API and the CLI find a job.
    A name of conf/job/ is `+job=NAME`. A job file, a planned folder or a dict is written by
    `job_file` into a folder under the user's cache addressed by what it is made from, added
    to Hydra's search path: a command killed with SIGKILL leaves no temporary folder behind
    (the folder must outlive Hydra's composing, which a multirun does once per run), and the
    next command of the same job reuses the folder. An Editly spec is converted each time (the
    media it names may have changed), at the overrides' size, and its job written as a dict's is."""
    if (spec := converted(job, overrides)) is not None:
        job = spec.fragment
    if _is_name(job):
        return [f"+job={job}"]
    return [f"hydra.searchpath=[file://{_written(job)}]", f"+job={WRITTEN}"]


def _writer() -> bytes:
    """What writes a job and checks it against the schema (this module and raypipe.config): a
    job written by another version of them is written and checked again, never reused."""
    return Path(__file__).read_bytes() + Path(inspect.getfile(register)).read_bytes()


def _written(job) -> Path:
    # A folder's job names its files relative to the folder: the folder is part of what it is.
    source = ((job.fragment, str(job.folder)) if isinstance(job, FolderJob)
              else job if isinstance(job, Mapping) else Path(job).expanduser().resolve())
    data = repr(source).encode() + _writer()
    if isinstance(source, Path) and source.is_file():
        data += source.read_bytes()
    # Beside the render cache, not in it: render.cache=false keeps nothing there.
    root = user_cache("raypipe-jobs")
    folder = root / hashlib.sha256(data).hexdigest()[:16]
    if (folder / "job").is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=root, prefix=".writing-"))
    try:
        job_file(job, fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    try:
        fresh.rename(folder)
    except OSError:  # another command wrote the same job first
        shutil.rmtree(fresh, ignore_errors=True)
    return folder


def _is_name(job) -> bool:
    """A job of conf/job/ (or of a --config-dir), by its name."""
    return not isinstance(job, (FolderJob, Mapping, os.PathLike)) and not str(job).endswith((".yaml", ".yml"))


def folder_job(job, overrides: Sequence[str] = ()) -> FolderJob | None:
    """A folder of photos and clips planned as a job, for the render size and the soundtrack
    (`job.audio.path=...`) of the overrides; None for a job of any other kind. A string
    that names a job in conf/job/ is that job, a folder of that name or not."""
    if isinstance(job, FolderJob):
        return job
    if not isinstance(job, (str, os.PathLike)) or not Path(job).expanduser().is_dir():
        return None
    if isinstance(job, str) and (CONF / "job" / f"{job}.yaml").is_file():
        return None
    # The other overrides may need the job's segments, which are what is being planned.
    sizing = [o for o in overrides if o.partition("=")[0].lstrip("+~").startswith("render.")
              or o.partition("=")[0].lstrip("+~") == "job.audio.path"]
    cfg = compose(sizing)
    return read_folder(Path(job), cfg.render.width, cfg.render.height, cfg.render.fps, cfg.job.audio.path)


def job_file(job, folder: Path) -> str:
    """A job name as it is; a YAML file, a planned folder or a dict written as a job config
    Hydra can compose, its keys checked against the schema by their full paths."""
    if isinstance(job, FolderJob):
        fragment, base = job.fragment, job.folder
    elif isinstance(job, Mapping):
        fragment, base = job, None
    elif _is_name(job):
        return str(job)
    else:
        path = Path(job).expanduser()
        if not path.is_file():
            raise ConfigError(f"job: no such file: {path}")
        try:
            with open(path) as f:
                fragment = yaml.safe_load(f) or {}
        except yaml.MarkedYAMLError as e:
            raise ConfigError(yaml_error_line(e)) from None
        if not isinstance(fragment, dict):
            raise ConfigError(f"{path}: a job file holds a mapping (job: {{name: ..., segments: [...]}})")
        base = path.absolute().parent
    # With `job:` it is a config fragment; without, the job section itself (as Hydra reads a
    # job/ file that has no `# @package _global_` line).
    fragment = dict(fragment) if "job" in fragment else {"job": dict(fragment)}
    if base is not None and isinstance(fragment["job"], dict):
        fragment["job"] = _relative_to(fragment["job"], base)
    if (unknown := unknown_key(fragment)):
        raise ConfigError(unknown)
    (folder / "job").mkdir()
    text = yaml.safe_dump(fragment, sort_keys=False, allow_unicode=True)
    (folder / "job" / f"{WRITTEN}.yaml").write_text("# @package _global_\n" + text)
    return WRITTEN


def _relative_to(job: dict, base: Path) -> dict:
    """The job with its relative file paths (sources, soundtrack and tracks, layers' images, fonts as files)
    taken from the job file's folder, as a user who keeps photos beside the job expects."""
    job = copy.deepcopy(job)

    def resolve(node, key: str, fonts: bool = False) -> None:
        value = node.get(key) if isinstance(node, dict) else None
        if not isinstance(value, str) or value.startswith(("/", "~", "$", *GENERATED)) or "://" in value:
            return
        if fonts and "/" not in value and not value.lower().endswith((".ttf", ".otf", ".ttc")):
            return  # a family name, for fontconfig
        node[key] = str(base / value)

    audio = job.get("audio") if isinstance(job.get("audio"), dict) else {}
    resolve(audio, "path")
    for track in audio.get("tracks") or []:
        resolve(track, "path")
    for segment in job.get("segments") or []:
        resolve(segment, "source")
        resolve(segment.get("caption") if isinstance(segment, dict) else None, "font", fonts=True)
    for layer in job.get("layers") or []:
        resolve(layer, "source")
        resolve(layer, "font", fonts=True)
    return job


def _run_dir(cfg: DictConfig, run_dir: str | os.PathLike | None) -> str:
    """The CLI's layout, outputs/<job>/<time>-<id>, with an id of its own per call."""
    if run_dir is None:
        run_dir = Path("outputs") / cfg.job.name / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}-{secrets.token_hex(3)}"
    run_dir = Path(run_dir).absolute()
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return str(run_dir)


def render(job, overrides: Sequence[str] = (), run_dir=None, quiet: bool = True,
           cancel: CancelToken | None = None) -> Result:
    """Renders the job (see the module's doc); progress on stderr unless `quiet`; `cancel`
    (a raypipe.errors.CancelToken) stops it from another thread. An Editly spec's errors and
    warnings name the spec's paths (clips[0].layers[0].path), not its converted job's keys."""
    if (spec := converted(job, overrides)) is not None:
        with spec.origins.naming():
            return render(spec.fragment, overrides, run_dir, quiet, cancel)
    planned = folder_job(job, overrides)
    cfg = config(planned or job, overrides)
    return render_config(cfg, _run_dir(cfg, run_dir), quiet=quiet, cancel=cancel, planned=planned)


def render_config(cfg: DictConfig, run_dir: str, on_result=None, quiet: bool = True,
                  cancel: CancelToken | None = None, planned: FolderJob | None = None) -> Result:
    """A composed config rendered into `run_dir` (the CLI's path), then its report.html, and
    the job `planned` for a folder as `run_dir`/job.yaml. With render.variants, each variant
    into `run_dir`/NAME, all in one engine: the sources are detected once for all of them."""
    from raypipe.engine.driver import render_all
    from raypipe.look.report_html import sheet_for, write_page
    from raypipe.plan.variants import variant_configs

    made = variant_configs(cfg) if cfg.render.variants else []
    jobs = [(v.cfg, os.path.join(run_dir, v.name), sheet_for(v.cfg), v.told) for v in made] or \
        [(cfg, run_dir, sheet_for(cfg), None)]
    results = []
    for (one, folder, _, _), rendered in zip(jobs, render_all(jobs, on_result, quiet, cancel)):
        write_page(one, rendered, folder)
        results.append(Result(rendered.report.output, rendered.report.to_dict(), folder))
    if planned is not None:
        path = planned.write(run_dir)
        log.info("the folder's job is %s: edit it and render it again with `python -m raypipe render %s`",
                 path, path)
    first = results[0]
    return Result(first.video, first.report, first.run_dir, tuple(results) if cfg.render.variants else ())


def detect(job, overrides: Sequence[str] = (), run_dir=None) -> Detected:
    """Detection only, through the detection cache: the contact sheet and what was found."""
    from raypipe.look.quick import detection_sheet

    cfg = config(job, overrides)
    folder = _run_dir(cfg, run_dir)
    sheet, info, detections = detection_sheet(cfg, folder)
    return Detected(sheet, detections.summary(), info.detector, folder)


def preview(job, overrides: Sequence[str] = (), run_dir=None, scale: float = 0.25,
            at: Sequence[float] | None = None, frames: bool = False) -> Result | list[str]:
    """The timeline small and fast (a Result), or PNG frames: at `at` seconds, or with
    `frames` each segment's first, middle and last frame (a list of paths)."""
    from raypipe.look.quick import preview_video, still_frames

    cfg = config(job, overrides)
    folder = _run_dir(cfg, run_dir)
    if at or frames:
        return still_frames(cfg, folder, list(at) if at else None)
    report = preview_video(cfg, folder, scale)
    return Result(report.output, report.to_dict(), folder)


def render_batch(template, rows: str | os.PathLike, overrides: Sequence[str] = (), on_progress=None,
                 run_dir=None, quiet: bool = True, cancel: CancelToken | None = None):
    """Renders a video per row of `rows` (CSV, JSONL or Parquet) from the `template` job, as
    `python -m raypipe batch +job=TEMPLATE batch.rows=ROWS` does; `on_progress(record)` hears
    each row's end. Returns the batch's report; `.records` has a result per row."""
    from raypipe.batch.run import render_batch as run

    cfg = config(template, [f"batch.rows={rows}", *overrides])
    return run(cfg, _run_dir(cfg, run_dir), quiet=quiet, cancel=cancel, on_progress=on_progress)
