"""`python -m raypipe {render,preview,detect,batch,bench,effects} ...`: Hydra parses what follows a
command, less the flags of our own (`--quiet`, `--frames`, `--at`, `--scale`, `--dry-run`) and the
job, which the API's `selecting` hands to Hydra as the API does."""
from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra import version as hydra_version
from hydra._internal.utils import _run_hydra, get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from raypipe.api import CONF, converted, folder_job, quote_patterns, selecting
from raypipe.config import hydra_error_line, register, yaml_error_line
from raypipe.errors import CancelToken, ConfigError, Interrupted, RaypipeError
from raypipe.plan.editly import Converted, convert, is_spec
from raypipe.plan.folder import FolderJob

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


@dataclass(frozen=True)
class Flags:
    """Our own flags, taken out of the command line before Hydra parses the rest (it would
    reject them)."""
    quiet: bool = False
    frames: bool = False
    at: tuple[float, ...] = ()
    scale: float = 0.25
    dry_run: bool = False

    @classmethod
    def take(cls, argv: Sequence[str]) -> tuple[Flags, list[str]]:
        """The flags of `argv`, and `argv` without them."""
        found: dict = {"at": []}
        rest, it = [], iter(argv)
        for arg in it:
            name, eq, value = arg.partition("=")
            if name in ("--quiet", "--frames", "--dry-run"):
                found[name[2:].replace("-", "_")] = True
            elif name in ("--at", "--scale"):
                number = _number(name, value if eq else next(it, ""))
                if name == "--at":
                    found["at"].append(number)
                else:
                    found["scale"] = number
            else:
                rest.append(arg)
        return cls(**{**found, "at": tuple(found["at"])}), rest


def _number(flag: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"expected a number of {'seconds' if flag == '--at' else 'the size'} (got {value!r})",
                          flag) from None


def take_job(overrides: Sequence[str], config_dir: str | None) -> tuple[str | Path | None, list[str]]:
    """The job the command line names, and its overrides without it: a job file (`path/job.yaml`,
    `+job=path/job.yaml`), +job=NAME (of --config-dir DIR/job/ first, as a file: it needs no
    `# @package` line and its relative paths are taken from its folder; else of conf/job/), or
    a folder of photos and clips (`photos/`). None when no job is named."""
    rest, found = [], None
    for arg in overrides:
        value = arg[len("+job="):] if arg.startswith("+job=") else None
        if "=" not in arg and not arg.startswith(("~", "-")) and (
                arg.endswith((".yaml", ".yml")) or is_spec(arg) or Path(arg).expanduser().is_dir()):
            value = Path(arg)  # a folder given so is one, whatever conf/job/ holds
        elif isinstance(value, str) and config_dir and _config_dir_job(config_dir, value).is_file():
            value = _config_dir_job(config_dir, value)
        if value is None:
            rest.append(arg)
        else:
            found = value
    return found, rest


def _config_dir_job(config_dir: str, name: str) -> Path:
    return Path(config_dir).expanduser() / "job" / f"{name}.yaml"


@dataclass(frozen=True)
class CommandInput:
    """What a command's work is given once Hydra has composed the config."""
    cfg: DictConfig
    run_dir: str
    cancel: CancelToken
    flags: Flags
    planned: FolderJob | None  # the job made of a folder (`render photos/`), written beside the video


@dataclass(frozen=True)
class Command:
    """A command of `python -m raypipe`: one on a config Hydra composes (`work`), or one that
    parses its own arguments (`plain`)."""
    summary: str  # its line in `python -m raypipe --help`
    options: str = ""  # its own flags, in its --help
    work: Callable[[CommandInput], None] | None = None  # a command on a composed config
    plain: Callable[[list[str]], None] | None = None  # a command Hydra does not parse


class Signalled:
    """The SIGINT and SIGTERM handler: asks the render to stop, and unwinds the main thread."""

    def __init__(self, cancel: CancelToken):
        self.cancel = cancel

    def __call__(self, signum: int, frame=None) -> None:
        # Python raises a handler's exception wherever the main thread is, and drops one raised
        # inside a weakref or __del__ callback (seen: a Ctrl-C printed as "Exception ignored" and
        # the render went on): the token raises it again at the render's next check.
        self.cancel.cancel(Interrupted(signum))
        raise Interrupted(signum)


class HydraCommand:
    """One command that Hydra parses and composes, then calls `task` with the config: once,
    or once per job of a multirun (-m)."""

    def __init__(self, name: str, work: Callable[[CommandInput], None], flags: Flags):
        self.name, self.work, self.flags = name, work, flags
        self.planned: FolderJob | None = None  # a folder named as the job, planned once Hydra's parser has run
        self.spec: Converted | None = None  # an Editly spec named as the job, converted then too
        # True while the work runs on a composed config, and after it failed: an error then is
        # not the overrides'. False again after each job of a multirun, whose next is composed next.
        self.working = False

    def start(self, argv: Sequence[str]) -> None:
        parser = get_args_parser()
        parser.prog = f"python -m raypipe {self.name}"  # how Hydra's usage names the program
        args = parser.parse_args(argv)
        selected, args.overrides = take_job(args.overrides, args.config_dir)
        if selected is not None:
            self.planned = folder_job(selected, args.overrides)
            self.spec = converted(selected, args.overrides)
        job = self.spec.fragment if self.spec is not None else self.planned or selected
        selection = selecting(job, args.overrides) if selected is not None else []
        # Each command's --help header, through the resolver Hydra's help template calls.
        args.overrides = [*selection, f"hydra.help.header=${{raypipe_usage:{self.name}}}",
                          *quote_patterns(args.overrides)]
        hydra_version.setbase("1.3")
        # hydra.main's own runner, given our argv rather than reading sys.argv (hydra-core is pinned).
        # The conf folder by its path: relative, it is a package of the caller's module when that
        # is raypipe.__main__ (the `raypipe` script), and raypipe.conf is no package.
        _run_hydra(args=args, args_parser=parser, task_function=self.task, config_path=str(CONF),
                   config_name="config")

    def task(self, cfg: DictConfig) -> None:
        """Runs the command's work with the CLI's contract: one `error:` line and exit 2 for
        bad input, `interrupted: ...` and 128 + signal when stopped, partial files removed."""
        self.working = True
        hc = HydraConfig.get()
        if "job" not in hc.runtime.choices:
            _fail("no job selected: pass a job file (render path/to/job.yaml), or +job=NAME, a file in conf/job/ "
                  "(or in --config-dir DIR/job/)")
        if self.flags.quiet:
            log.setLevel(logging.ERROR)
        cancel = CancelToken()
        signal.signal(signal.SIGTERM, Signalled(cancel))  # what `ray job stop` sends
        signal.signal(signal.SIGINT, Signalled(cancel))
        sys.unraisablehook = _unraisable
        try:
            # A spec's errors and warnings name its own paths, not its converted job's keys.
            with self.spec.origins.naming() if self.spec is not None else nullcontext():
                self.work(CommandInput(cfg, hc.runtime.output_dir, cancel, self.flags, self.planned))
        except RaypipeError as e:
            if isinstance(cancel.reason, Interrupted):  # a read or write cut short by the stop, failing on its way out
                _interrupted(cancel.reason.signum)
            _fail(str(e))
        except (InterpolationResolutionError, MissingMandatoryValue) as e:  # a value of the user's config
            # Here, not past Hydra, which would log a line naming its own overrides first.
            _fail(hydra_error_line(e))
        except KeyboardInterrupt:  # a SIGINT before the handler was in place
            _interrupted(signal.SIGINT)
        except Interrupted as e:
            _interrupted(e.signum)
        except SystemExit as e:
            if e.code == signal.SIGTERM:  # Ray's SIGTERM handler, set when Ray starts, exits this way
                _interrupted(signal.SIGTERM)
            raise
        self.working = False


def _announce(report) -> None:
    """As soon as the video is published, not after Ray's shutdown; each variant's report is in
    its own folder (`report.run`)."""
    log.info("rendered %d frames in %.1f s; report: %s/report.json", report.frames, report.stages["total"],
             report.run)
    print(report.output, flush=True)


def render_work(given: CommandInput) -> None:
    from raypipe.api import render_config  # after Hydra has parsed: `--help` stays instant

    render_config(given.cfg, given.run_dir, on_result=_announce,
                  quiet=given.flags.quiet, cancel=given.cancel, planned=given.planned)


def preview_work(given: CommandInput) -> None:
    from raypipe.look import quick as quicklook

    if given.flags.frames or given.flags.at:
        for path in quicklook.still_frames(given.cfg, given.run_dir, list(given.flags.at) or None):
            print(path, flush=True)
    else:
        report = quicklook.preview_video(given.cfg, given.run_dir, given.flags.scale, quiet=given.flags.quiet,
                                         cancel=given.cancel)
        print(report.output, flush=True)


def detect_work(given: CommandInput) -> None:
    from raypipe.look import quick as quicklook

    path, info, _ = quicklook.detection_sheet(given.cfg, given.run_dir)
    if info.fallback_reason:
        log.warning("DETECTOR FELL BACK TO SALIENCY: %s", info.fallback_reason)
    print(path, flush=True)


def batch_work(given: CommandInput) -> None:
    from raypipe.batch import run as batch

    if given.flags.dry_run:
        _, videos, failed, _ = batch.checked(given.cfg, given.run_dir, skip_published=False)
        for record in failed:
            print(record.error, file=sys.stderr)
        each = f" ({len(given.cfg.render.variants)} videos each)" if given.cfg.render.variants else ""
        print(f"{len(videos)} of {len(videos) + len(failed)} rows would render{each}", flush=True)
        if failed:
            sys.exit(1)
        return
    report = batch.render_batch(given.cfg, given.run_dir, quiet=given.flags.quiet, cancel=given.cancel,
                                on_progress=_row_done)
    log.info("batch: %s in %.1f s; manifest: %s", report.summary(), report.seconds, report.manifest)
    if report.failed:
        sys.exit(1)


def _row_done(record) -> None:
    if record.status == "failed":
        print(record.error, file=sys.stderr, flush=True)
    else:
        print(record.output, flush=True)


def bench_main(argv: list[str]) -> None:
    from raypipe.bench.run import main as bench

    bench(argv)


def effects_main(argv: list[str], listed: str = "sections") -> None:
    from raypipe.frames import catalog

    try:
        print(catalog.listing(getattr(catalog, listed)), flush=True)
    except BrokenPipeError:  # `effects | head`: the reader has all it wanted; nothing is left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def convert_main(argv: list[str]) -> None:
    if len(argv) != 1:
        _fail("convert takes one Editly spec: python -m raypipe convert spec.json5")
    try:
        job = convert(argv[0]).fragment
    except RaypipeError as e:
        _fail(str(e))
    print(yaml.safe_dump(job, sort_keys=False, allow_unicode=True), end="", flush=True)


def layers_main(argv: list[str]) -> None:
    effects_main(argv, "layer_sections")


def serve_main(argv: list[str]) -> None:
    """`serve [--config-dir DIR] [overrides]`: until SIGTERM or SIGINT, which stop the renders under
    way (taken up again at the next start). DIR's job/ holds templates beside conf/job/."""
    from raypipe.api import compose
    from raypipe.serve.deploy import serve_forever
    from raypipe.serve.guard import check_service

    argv = _config_dir_as_searchpath(argv)
    try:
        cfg = compose(argv)
        check_service(cfg.serve)
    except RaypipeError as e:
        _fail(str(e))
    _interrupted(serve_forever(cfg, argv))


def _config_dir_as_searchpath(argv: list[str]) -> list[str]:
    """`--config-dir DIR` (or `=DIR`) for a command Hydra does not parse: the override that adds
    DIR to Hydra's search path, as Hydra's own flag does."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config-dir" or arg.startswith("--config-dir="):
            folder = arg.partition("=")[2] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            if not folder or not os.path.isdir(folder):
                _fail(f"--config-dir: {folder or 'a folder'} is not a folder")
            out.append(f"hydra.searchpath=[file://{os.path.abspath(folder)}]")
            i += 1 if "=" in arg else 2
            continue
        out.append(arg)
        i += 1
    return out


def keys_main(argv: list[str]) -> None:
    """`keys create NAME [serve.root=DIR]`: the key is shown once, as the last line; the store keeps its hash."""
    from raypipe.api import compose
    from raypipe.serve.store import Store

    if len(argv) < 2 or argv[0] != "create":
        _fail("usage: python -m raypipe keys create NAME [serve.root=DIR]")
    try:
        store = Store(compose(argv[2:]).serve.root)
    except RaypipeError as e:
        _fail(str(e))
    key, secret = store.create_key(argv[1])
    print(f"key {key.id} ({key.name}) in {store.root}: shown once, keep it secret", file=sys.stderr)
    print(secret, flush=True)


COMMANDS = {
    "render": Command("render a job: JOB [key=value ...] [--quiet]",
                      "  --quiet                      errors and the video's path only\n", work=render_work),
    "preview": Command("a quick look: the timeline at 1/4 size [--scale F], or PNGs [--frames | --at S]",
                       "  --scale F                    the timeline's size (default 0.25)\n"
                       "  --at S                       the full-size frame at S seconds, as a PNG (repeats)\n"
                       "  --frames                     each segment's first, middle and last frame, as PNGs\n"
                       "  --quiet                      errors and the paths only\n", work=preview_work),
    "detect": Command("detection only: detections.png, each source with its box, mask outline, score",
                      "  --quiet                      errors and the sheet's path only\n", work=detect_work),
    "batch": Command("many videos: +job=TEMPLATE batch.rows=ROWS.csv|jsonl|parquet [--dry-run]",
                     "  batch.rows=ROWS              a CSV, JSONL or Parquet table, a row per video (README: Many "
                     "videos)\n"
                     "  --dry-run                    every check, for every row; renders nothing\n"
                     "  --quiet                      errors and the videos' paths only\n", work=batch_work),
    "bench": Command("benchmarks: render, nodes, compare, cache, layers, detect, clip, handoff, effects, media, serve",
                     plain=bench_main),
    "effects": Command("every effect, transition and caption option: type, default, what it does",
                       plain=effects_main),
    "layers": Command("every layer type, animation and anchor, with its keys", plain=layers_main),
    "convert": Command("an Editly spec (spec.json5) as the equivalent job, in YAML", plain=convert_main),
    "serve": Command("the render service: an HTTP API on Ray Serve at serve.host:serve.port [key=value ...]",
                     plain=serve_main),
    "keys": Command("API keys of the service: keys create NAME [serve.root=DIR]", plain=keys_main),
}
PLAIN = ("bench", "convert", "serve", "keys")  # commands that Hydra does not parse
USAGE = "usage: python -m raypipe COMMAND JOB [key=value ...]\n\ncommands:\n" + "".join(
    f"  {name:<8} {command.summary}\n" for name, command in COMMANDS.items()) + (
    "\nJOB is a job file (path/to/job.yaml, or +job=path/to/job.yaml) or +job=NAME (conf/job/NAME.yaml,\n"
    "or DIR/job/NAME.yaml with --config-dir DIR).\n"
    "`python -m raypipe COMMAND --help` shows a command's own options and the config keys.")


def _usage(command: str = "render") -> str:
    """A command's --help header: Hydra's help template reads it through ${raypipe_usage:COMMAND}."""
    return (f"raypipe {command}: {COMMANDS[command].summary}\n\n"
            f"Usage: python -m raypipe {command} JOB [key=value ...] [options]\n"
            "  path/to/job.yaml             a job file; relative paths in it are taken from its folder\n"
            "  +job=NAME                    a job from conf/job/ (or from --config-dir DIR/job/)\n"
            "  render.width=1920 render.height=1080 render.fps=24\n"
            "  job.output=/some/where.mp4   detector=clip|saliency   ray.address=auto\n"
            "  --cfg job                    print the composed config and exit\n"
            f"{COMMANDS[command].options}")


if not OmegaConf.has_resolver("raypipe_usage"):
    OmegaConf.register_new_resolver("raypipe_usage", _usage)


def _a_bug(run: HydraCommand | None, e: Exception) -> bool:
    """Not the user's fault, so not one `error:` line: raised by raypipe's own code, or by
    OmegaConf on the config once composed (the work reports a value the user gave that does
    not resolve). Before the work, OmegaConf and Hydra fail on an override with their own
    errors, and with a bare AssertionError or AttributeError on some (a key under a null node)."""
    if run is not None and run.working:
        return True
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        return False
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return not module.startswith(("omegaconf.", "hydra."))


def run_hydra_command(name: str, argv: list[str]) -> None:
    """A command Hydra parses, its errors reported as the CLI's one line, exit 2, where they
    are the user's; a bug keeps its traceback."""
    # Let Hydra's errors reach us, to be reported on one line rather than as Hydra's dump.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    run = None
    try:
        flags, rest = Flags.take(argv)
        run = HydraCommand(name, COMMANDS[name].work, flags)
        run.start(rest)
    except RaypipeError as e:  # a job file that is missing or not a job, a bad flag
        _fail(str(e))
    except yaml.MarkedYAMLError as e:  # a file of another config group
        _fail(yaml_error_line(e))
    except Exception as e:
        if _a_bug(run, e):
            raise
        if isinstance(e, (HydraException, OmegaConfBaseException)):
            _fail(hydra_error_line(e))
        overrides = " ".join(a for a in rest if "=" in a and not a.startswith("-"))
        _fail(f"the overrides could not be applied to the config ({overrides}): {type(e).__name__}: {e}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"], ["help"]):
        print(USAGE)
        return
    if not argv or argv[0] not in COMMANDS:
        unknown = f"unknown command {argv[0]!r}" if argv else "no command"
        print(f"error: {unknown}; the commands are {', '.join(COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    name, rest = argv[0], argv[1:]
    if COMMANDS[name].plain is not None:
        COMMANDS[name].plain(rest)
    else:
        run_hydra_command(name, rest)


if __name__ == "__main__":
    main()
