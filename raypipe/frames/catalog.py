"""Every effect, transition and caption option, as `python -m raypipe effects` lists them: made
from the definitions themselves (their docstrings, their params' fields and `param` help), so
the listing cannot drift from what a job accepts."""
from __future__ import annotations

from dataclasses import fields

from raypipe.config import CaptionCfg
from raypipe.frames.effects import EFFECTS
from raypipe.frames.transitions import TRANSITIONS


def _doc(definition: type) -> str:
    return " ".join(definition.__doc__.split("\n\n")[0].split())


def sections() -> list[tuple[str, list[tuple[str, str, type]]]]:
    """(heading, [(name, what it does, its parameters' dataclass)]) for each kind of option."""
    return [
        ("effects: a segment's `effect`, its parameters in `params`",
         [(name, _doc(type(e)), e.params) for name, e in EFFECTS.items()]),
        ("transitions: a segment's `transition.type` into the next, over `transition.duration` seconds, "
         "its parameters in `transition.params`",
         [(name, _doc(type(t)), t.params) for name, t in TRANSITIONS.items()]),
        ("captions: a segment's `caption`", [("caption", _doc(CaptionCfg), CaptionCfg)]),
    ]


def yaml_value(v) -> str:
    """A default as a job file writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if v == "":
        return '""'
    return str(v)


def _option(f) -> str:
    return f"{f.name}: {f.type} = {yaml_value(f.default)}"


def listing() -> str:
    every = [f for _, items in sections() for _, _, params in items for f in fields(params)]
    width = max(len(_option(f)) for f in every)
    lines = []
    for heading, items in sections():
        lines += ["", heading]
        for name, what, params in items:
            lines.append(f"  {name}: {what}")
            lines += [f"    {_option(f):<{width}}  {f.metadata['help']}" for f in fields(params)]
    return "\n".join(lines[1:])
