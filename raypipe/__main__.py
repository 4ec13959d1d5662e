"""`python -m raypipe render +job=NAME [overrides]`: Hydra parses everything after the command."""
from __future__ import annotations

import logging
import os
import signal
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from raypipe import Interrupted, RaypipeError, stop, stop_requested
from raypipe.config import register

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


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def render_main(cfg: DictConfig) -> None:
    from raypipe.render import render  # after Hydra has parsed: `--help` stays instant

    hc = HydraConfig.get()
    if "job" not in hc.runtime.choices:
        _fail("no job selected: pass +job=NAME, a file in conf/job/ (or in --config-dir DIR/job/)")

    def announce(report: dict) -> None:  # as soon as the video is published, not after Ray's shutdown
        log.info("rendered %d frames in %.1f s; report: %s/report.json",
                 report["frames"], report["stages"]["total"], hc.runtime.output_dir)
        print(report["output"], flush=True)

    signal.signal(signal.SIGTERM, stop)  # what `ray job stop` sends
    signal.signal(signal.SIGINT, stop)
    sys.unraisablehook = _unraisable
    try:
        render(cfg, hc.runtime.output_dir, on_result=announce)
    except RaypipeError as e:
        if stop_requested():  # a read or write cut short by the stop, failing on its way out
            _interrupted(stop_requested())
        _fail(str(e))
    except KeyboardInterrupt:  # a SIGINT before the handler was in place
        _interrupted(signal.SIGINT)
    except Interrupted as e:
        _interrupted(e.signum)
    except SystemExit as e:
        if e.code == signal.SIGTERM:  # Ray's SIGTERM handler, set when Ray starts, exits this way
            _interrupted(signal.SIGTERM)
        raise


def bench_main() -> None:
    from raypipe.bench import main as bench

    bench(sys.argv[1:])


COMMANDS = {"render": render_main, "bench": bench_main}


def hydra_error_line(e: Exception) -> str:
    """Hydra's composition errors span many lines; the user needs the key or file and why."""
    if isinstance(e, MissingConfigException) and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")
        options = f" (available: {', '.join(sorted(e.options))})" if e.options else ""
        return f"{group or 'config'}: no config named {name!r}{options}"
    cause = e if isinstance(e, OmegaConfBaseException) else e.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        return f"{cause.full_key}: {str(cause).splitlines()[0]}"
    return str(e).strip().splitlines()[0]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print("usage: python -m raypipe render +job=NAME [key=value ...]\n"
              "       python -m raypipe bench {render,nodes,compare,handoff,effects,media} [options]", file=sys.stderr)
        sys.exit(2)
    command = sys.argv.pop(1)  # Hydra sees only its overrides and flags
    sys.argv[0] = f"python -m raypipe {command}"  # how --help names the program
    # Let Hydra's errors reach us, to be reported on one line rather than as Hydra's dump.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        COMMANDS[command]()
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {hydra_error_line(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
