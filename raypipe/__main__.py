"""`python -m raypipe render +job=NAME [overrides]`: Hydra parses everything after the command."""
from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from raypipe import RaypipeError
from raypipe.config import register

log = logging.getLogger("raypipe")
register()


def _fail(message: str) -> None:
    log.error(message)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def render_main(cfg: DictConfig) -> None:
    from raypipe.render import render  # after Hydra has parsed: `--help` stays instant

    hc = HydraConfig.get()
    if "job" not in hc.runtime.choices:
        _fail("no job selected: pass +job=NAME, a file in conf/job/ (or in --config-dir DIR/job/)")
    try:
        report = render(cfg, hc.runtime.output_dir)
    except RaypipeError as e:
        _fail(str(e))
    log.info("rendered %d frames in %.1f s; report: %s/report.json",
             report["frames"], report["stages"]["total"], hc.runtime.output_dir)
    print(report["output"], flush=True)


COMMANDS = {"render": render_main}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m raypipe {{{'|'.join(COMMANDS)}}} +job=NAME [key=value ...]", file=sys.stderr)
        sys.exit(2)
    command = sys.argv.pop(1)  # Hydra sees only its overrides and flags
    COMMANDS[command]()


if __name__ == "__main__":
    main()
