"""`python -m raypipe {render,preview,detect,bench} ...`: Hydra parses what follows a command,
less the flags of our own (`--quiet`, `--frames`, `--at`, `--scale`)."""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from raypipe.api import folder_job, job_file
from raypipe.config import hydra_error_line, register, user_cache, yaml_error_line
from raypipe.errors import CancelToken, Interrupted, RaypipeError
from raypipe.plan.editly import convert, is_spec

log = logging.getLogger("raypipe")
register()


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _interrupted(signum: int) -> None:
    """By now the render has unwound: tasks cancelled, chunks and temporary files removed."""
    print(f"interrupted: {signal.Signals(signum).name}: the render was stopped and its partial files removed",
          file=sys.stderr)
    sys.exit(128 + signum)


def _unraisable(unraisable) -> None:
    """A stop raised inside a callback that cannot raise (PyAV's I/O, a weakref's) is dropped
    there and raised again by the render's next check: it needs no traceback."""
    if not isinstance(unraisable.exc_value, (Interrupted, KeyboardInterrupt)):
        sys.__unraisablehook__(unraisable)


# Our own flags, taken out of the command line before Hydra parses the rest (its overrides).
FLAGS: dict = {"quiet": False, "frames": False, "at": [], "scale": 0.25, "dry_run": False, "composed": False,
               "planned": None}  # planned: the job made of a folder (`render photos/`), written beside the video


def _run(work) -> None:
    """Runs `work(run_dir, cancel)` with the CLI's contract: one `error:` line and exit 2 for
    bad input, `interrupted: ...` and 128 + signal when stopped, partial files removed."""
    FLAGS["composed"] = True
    hc = HydraConfig.get()
    if "job" not in hc.runtime.choices:
        _fail("no job selected: pass a job file (render path/to/job.yaml), or +job=NAME, a file in conf/job/ "
              "(or in --config-dir DIR/job/)")
    if FLAGS["quiet"]:
        log.setLevel(logging.ERROR)
    cancel = CancelToken()

    def stop(signum: int, frame=None) -> None:
        # Python raises a handler's exception wherever the main thread is, and drops one raised
        # inside a weakref or __del__ callback (seen: a Ctrl-C printed as "Exception ignored" and
        # the render went on): the token raises it again at the render's next check.
        cancel.cancel(Interrupted(signum))
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, stop)  # what `ray job stop` sends
    signal.signal(signal.SIGINT, stop)
    sys.unraisablehook = _unraisable
    try:
        work(hc.runtime.output_dir, cancel)
    except RaypipeError as e:
        if isinstance(cancel.reason, Interrupted):  # a read or write cut short by the stop, failing on its way out
            _interrupted(cancel.reason.signum)
        _fail(str(e))
    except KeyboardInterrupt:  # a SIGINT before the handler was in place
        _interrupted(signal.SIGINT)
    except Interrupted as e:
        _interrupted(e.signum)
    except SystemExit as e:
        if e.code == signal.SIGTERM:  # Ray's SIGTERM handler, set when Ray starts, exits this way
            _interrupted(signal.SIGTERM)
        raise


def _announce(run_dir: str):
    def announce(report) -> None:  # as soon as the video is published, not after Ray's shutdown
        log.info("rendered %d frames in %.1f s; report: %s/report.json", report.frames, report.stages["total"],
                 run_dir)
        print(report.output, flush=True)

    return announce


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def render_main(cfg: DictConfig) -> None:
    from raypipe.api import render_config  # after Hydra has parsed: `--help` stays instant

    _run(lambda run_dir, cancel: render_config(cfg, run_dir, on_result=_announce(run_dir), quiet=FLAGS["quiet"],
                                               cancel=cancel, planned=FLAGS["planned"]))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def preview_main(cfg: DictConfig) -> None:
    from raypipe.look import quick as quicklook

    def work(run_dir: str, cancel: CancelToken) -> None:
        if FLAGS["frames"] or FLAGS["at"]:
            for path in quicklook.still_frames(cfg, run_dir, FLAGS["at"] or None):
                print(path, flush=True)
        else:
            print(quicklook.preview_video(cfg, run_dir, FLAGS["scale"], quiet=FLAGS["quiet"], cancel=cancel).output,
                  flush=True)

    _run(work)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def detect_main(cfg: DictConfig) -> None:
    from raypipe.look import quick as quicklook

    def work(run_dir: str, cancel: CancelToken) -> None:
        path, info, _ = quicklook.detection_sheet(cfg, run_dir)
        if info["fallback_reason"]:
            log.warning("DETECTOR FELL BACK TO SALIENCY: %s", info["fallback_reason"])
        print(path, flush=True)

    _run(work)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def batch_main(cfg: DictConfig) -> None:
    from raypipe.batch import run as batch

    def work(run_dir: str, cancel: CancelToken) -> None:
        if FLAGS["dry_run"]:
            _, videos, failed, _ = batch.checked(cfg, run_dir, skip_published=False)
            for record in failed:
                print(record.error, file=sys.stderr)
            print(f"{len(videos)} of {len(videos) + len(failed)} rows would render", flush=True)
            if failed:
                sys.exit(1)
            return
        report = batch.render_batch(cfg, run_dir, quiet=FLAGS["quiet"], cancel=cancel, on_progress=_row_done)
        log.info("batch: %d done, %d skipped, %d failed of %d rows in %.1f s; manifest: %s", report.done,
                 report.skipped, report.failed, report.videos, report.seconds, report.manifest)
        if report.failed:
            sys.exit(1)

    _run(work)


def _row_done(record) -> None:
    if record.status == "failed":
        print(record.error, file=sys.stderr, flush=True)
    else:
        print(record.output, flush=True)


def bench_main() -> None:
    from raypipe.bench.run import main as bench

    bench(sys.argv[1:])


def convert_main() -> None:
    if len(sys.argv) != 2:
        _fail("convert takes one Editly spec: python -m raypipe convert spec.json5")
    print(yaml.safe_dump(convert(sys.argv[1]).fragment, sort_keys=False, allow_unicode=True), end="", flush=True)


def effects_main(listed: str = "sections") -> None:
    from raypipe.frames import catalog

    try:
        print(catalog.listing(getattr(catalog, listed)), flush=True)
    except BrokenPipeError:  # `effects | head`: the reader has all it wanted; nothing is left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


COMMANDS = {
    "render": (render_main, "render a job: JOB [key=value ...] [--quiet]"),
    "preview": (preview_main, "a quick look: the timeline at 1/4 size [--scale F], or PNGs [--frames | --at S]"),
    "detect": (detect_main, "detection only: detections.png, each source with its box, mask outline, score"),
    "batch": (batch_main, "many videos: +job=TEMPLATE batch.rows=ROWS.csv|jsonl|parquet [--dry-run]"),
    "bench": (bench_main, "benchmarks: render, nodes, compare, cache, detect, clip, handoff, effects, media"),
    "effects": (effects_main, "every effect, transition and caption option: type, default, what it does"),
    "layers": (functools.partial(effects_main, "layer_sections"), "every layer type, animation and anchor, with "
                                                                   "its keys"),
    "convert": (convert_main, "an Editly spec (spec.json5) as the equivalent job, in YAML"),
}
PLAIN = ("bench", "convert")  # commands that Hydra does not parse
USAGE = "usage: python -m raypipe COMMAND JOB [key=value ...]\n\ncommands:\n" + "".join(
    f"  {name:<8} {text}\n" for name, (_, text) in COMMANDS.items()) + (
    "\nJOB is a job file (path/to/job.yaml, or +job=path/to/job.yaml) or +job=NAME (conf/job/NAME.yaml,\n"
    "or DIR/job/NAME.yaml with --config-dir DIR).\n"
    "`python -m raypipe COMMAND --help` shows a command's own options and the config keys.")
# Each command's --help header: Hydra's help template reads it through ${raypipe_usage:}.
OPTIONS = {
    "render": "  --quiet                      errors and the video's path only\n",
    "preview": ("  --scale F                    the timeline's size (default 0.25)\n"
                "  --at S                       the full-size frame at S seconds, as a PNG (repeats)\n"
                "  --frames                     each segment's first, middle and last frame, as PNGs\n"
                "  --quiet                      errors and the paths only\n"),
    "detect": "  --quiet                      errors and the sheet's path only\n",
    "batch": ("  batch.rows=ROWS              a CSV, JSONL or Parquet table, a row per video (README: Many videos)\n"
              "  --dry-run                    every check, for every row; renders nothing\n"
              "  --quiet                      errors and the videos' paths only\n"),
    "effects": "",
    "layers": "",
}
HELP = {"command": "render"}


def _usage() -> str:
    command = HELP["command"]
    return (f"raypipe {command}: {COMMANDS[command][1]}\n\n"
            f"Usage: python -m raypipe {command} JOB [key=value ...] [options]\n"
            "  path/to/job.yaml             a job file; relative paths in it are taken from its folder\n"
            "  +job=NAME                    a job from conf/job/ (or from --config-dir DIR/job/)\n"
            "  render.width=1920 render.height=1080 render.fps=24\n"
            "  job.output=/some/where.mp4   detector=clip|saliency   ray.address=auto\n"
            "  --cfg job                    print the composed config and exit\n"
            f"{OPTIONS[command]}")


if not OmegaConf.has_resolver("raypipe_usage"):
    OmegaConf.register_new_resolver("raypipe_usage", _usage)


def _take_flags(argv: list[str]) -> list[str]:
    """Removes our flags from the command line (Hydra would reject them) into FLAGS."""
    rest, it = [], iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name == "--quiet":
            FLAGS["quiet"] = True
        elif name == "--frames":
            FLAGS["frames"] = True
        elif name == "--dry-run":
            FLAGS["dry_run"] = True
        elif name in ("--at", "--scale"):
            value = value if eq else next(it, "")
            try:
                number = float(value)
            except ValueError:
                _fail(f"{name}: expected a number of {'seconds' if name == '--at' else 'the size'} (got {value!r})")
            if name == "--at":
                FLAGS["at"].append(number)
            else:
                FLAGS["scale"] = number
        else:
            rest.append(arg)
    return rest


HYDRA_VALUED = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--cfg", "-c",
                "--package", "-p")


def _written(job) -> tuple[Path, str]:
    """The job written for Hydra in a folder addressed by what it is made from (the file's
    path and bytes, or the planned folder's job), under the user's cache directory: a command
    killed with SIGKILL leaves no temporary folder behind, and the next reuses the folder."""
    # A folder's job names its files relative to the folder: the folder is part of what it is.
    source = (job.fragment, str(job.folder)) if hasattr(job, "fragment") else job if isinstance(job, dict) \
        else Path(job).expanduser().resolve()
    data = repr(source).encode()
    if isinstance(source, Path) and source.is_file():
        data += source.read_bytes()
    # Beside the render cache, not in it: render.cache=false keeps nothing there.
    root = user_cache("raypipe-jobs")
    folder = root / hashlib.sha256(data).hexdigest()[:16]
    if not (folder / "job").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(dir=root, prefix=".writing-"))
        try:
            job_file(job, fresh)
            fresh.rename(folder)
        except OSError:  # another command wrote the same job first
            shutil.rmtree(fresh, ignore_errors=True)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
    return folder, "_api"


def _job_files(argv: list[str]) -> list[str]:
    """The command line with a job file (`path/job.yaml`, `+job=path/job.yaml`, or +job=NAME
    of a --config-dir) or a folder of photos and clips (`photos/`, planned as a job) written
    by the API's one mechanism into a folder Hydra searches (`_written`):
    so the file needs no `# @package` line, its relative paths are taken from its folder, and
    its keys and syntax are checked with full paths."""
    config_dir = next((v for flag, v in zip(argv, argv[1:]) if flag in ("--config-dir", "-cd")), None)
    config_dir = config_dir or next((a.partition("=")[2] for a in argv if a.startswith("--config-dir=")), None)
    rest, found, at = [], None, 0
    for i, arg in enumerate(argv):
        value = arg[len("+job="):] if arg.startswith("+job=") else None
        positional = not arg.startswith("-") and "=" not in arg and (i == 0 or argv[i - 1] not in HYDRA_VALUED)
        if positional and (arg.endswith((".yaml", ".yml")) or is_spec(arg) or Path(arg).expanduser().is_dir()):
            value = Path(arg)  # a folder given so is one, whatever conf/job/ holds
        if value is None:
            rest.append(arg)
        elif isinstance(value, Path) or value.endswith((".yaml", ".yml")) or "/" in value:
            found, at = value, len(rest)
        elif config_dir and (Path(config_dir).expanduser() / "job" / f"{value}.yaml").is_file():
            found, at = str(Path(config_dir).expanduser() / "job" / f"{value}.yaml"), len(rest)
        else:
            rest.append(arg)
    if found is None:
        return argv
    if is_spec(found):  # an Editly spec, converted on every run: the media it names may have changed
        found = convert(found).fragment
    FLAGS["planned"] = folder_job(found, rest)
    folder, name = _written(FLAGS["planned"] or found)
    # In the job's place: Hydra's parser takes overrides only as one run between its flags.
    return [*rest[:at], f"hydra.searchpath=[file://{folder}]", f"+job={name}", *rest[at:]]


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        unknown = f"unknown command {sys.argv[1]!r}" if len(sys.argv) >= 2 else "no command"
        print(f"error: {unknown}; the commands are {', '.join(COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    command = sys.argv.pop(1)  # Hydra sees only its overrides and flags
    sys.argv[0] = f"python -m raypipe {command}"  # how --help names the program
    if command not in PLAIN:
        from raypipe.api import quote_patterns

        HELP["command"] = command
        sys.argv[1:] = quote_patterns(_take_flags(sys.argv[1:]))
    # Let Hydra's errors reach us, to be reported on one line rather than as Hydra's dump.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    given = sys.argv[1:]
    try:
        if command not in PLAIN:
            sys.argv[1:] = _job_files(sys.argv[1:])
        COMMANDS[command][0]()
    except RaypipeError as e:  # a job file that is missing or not a job
        _fail(str(e))
    except (HydraException, OmegaConfBaseException) as e:
        _fail(hydra_error_line(e))
    except yaml.MarkedYAMLError as e:  # a file of another config group
        _fail(yaml_error_line(e))
    except Exception as e:
        if command in PLAIN or FLAGS["composed"]:
            raise
        # OmegaConf fails with a bare AssertionError or AttributeError on some overrides (a key
        # under a node that is null): the overrides' fault all the same, said on one line.
        overrides = " ".join(a for a in given if "=" in a)
        _fail(f"the overrides could not be applied to the config ({overrides}): {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
