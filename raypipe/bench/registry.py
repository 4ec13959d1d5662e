"""The benchmarks of `python -m raypipe bench`, each registered by its own module with `@bench`."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Arg:
    """One option of a benchmark: argparse's `add_argument(*names, **options)`."""
    names: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def arg(*names: str, **options: Any) -> Arg:
    return Arg(names, options)


RUNS = arg("--runs", type=int, default=3)


@dataclass(frozen=True)
class Overrides:
    """A benchmark takes Hydra overrides, before or after its options; `default` when none are given."""
    default: tuple[str, ...] = ("+job=demo",)
    of: str = "Hydra"

    @property
    def help(self) -> str:
        return f"{self.of} overrides (default: {' '.join(self.default)})"


DEMO = Overrides()


@dataclass(frozen=True)
class Bench:
    name: str
    run: Callable[[argparse.Namespace], dict]  # the figures, printed as JSON
    help: str
    args: tuple[Arg, ...] = ()
    overrides: Overrides | None = None


BENCHES: dict[str, Bench] = {}  # filled as the modules that define benchmarks are imported


def bench(name: str, *args: Arg, help: str | None = None, overrides: Overrides | None = None):
    """Registers the decorated function as `python -m raypipe bench NAME`, with its options;
    its help is the first line of its docstring unless given."""
    def register(run: Callable[[argparse.Namespace], dict]) -> Callable[[argparse.Namespace], dict]:
        BENCHES[name] = Bench(name, run, help or run.__doc__.splitlines()[0], args, overrides)
        return run

    return register


def parser(description: str) -> argparse.ArgumentParser:
    """`python -m raypipe bench`'s parser: a subcommand per registered benchmark, by name
    (the order the modules registered them in is their import order, which isort sets)."""
    top = argparse.ArgumentParser(prog="python -m raypipe bench", description=description)
    sub = top.add_subparsers(dest="which", required=True)
    for b in sorted(BENCHES.values(), key=lambda b: b.name):
        p = sub.add_parser(b.name, help=b.help)
        for a in b.args:
            p.add_argument(*a.names, **a.options)
        if b.overrides is not None:
            p.add_argument("overrides", nargs="*", default=[], help=b.overrides.help)
    return top
