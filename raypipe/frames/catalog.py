"""Every effect, transition and caption option, as `python -m raypipe effects` lists them, and
every layer type, animation and anchor, as `python -m raypipe layers` does: made from the
definitions themselves (their docstrings, their params' fields and `param` help), so the
listing cannot drift from what a job accepts."""
from __future__ import annotations

from dataclasses import MISSING, fields

from raypipe.config import AnimationCfg, CaptionCfg, LayerCfg
from raypipe.frames.effects import EFFECTS
from raypipe.frames.layers import ANCHORS, ANIMATIONS, AUTO_ORDER, LAYER_TYPES
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


def layer_sections() -> list[tuple[str, list[tuple[str, str, list]]]]:
    """layers' sections, as sections() (each item's parameters as a list of fields)."""
    typed = {key for kind in LAYER_TYPES.values() for key in kind.keys}
    every = [f for f in fields(LayerCfg) if f.name not in typed and f.name != "type"]
    edges = {"top": "top edge", "bottom": "bottom edge", "left": "left edge", "right": "right edge"}
    return [
        ("layers: an item of `job.layers`, its `type` and the keys it reads; drawn over the segments in order, "
         "the last on top",
         [*((name, _doc(kind), [f for f in fields(LayerCfg) if f.name in kind.keys])
            for name, kind in LAYER_TYPES.items()),
          ("every", "the keys every layer has, whatever its type", every)]),
        ("animations: a layer's `in` and `out`", [*((name, _doc(type(a)), []) for name, a in ANIMATIONS.items()),
                                                  ("in_or_out", _doc(AnimationCfg), list(fields(AnimationCfg)))]),
        (f"anchors: a layer's `position`, inside its margin; auto: of {', '.join(AUTO_ORDER)}, those clear of "
         "the faces (with avoid: subject, of the subject too), the one covering least of the subject (the earlier "
         "on a tie)", [(name, " and ".join(edges[p] for p in name.split("_") if p in edges) or "the middle",
                                   []) for name in ANCHORS]),
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
    default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
    return f"{f.name}: {f.type} = {yaml_value(default)}"


def _fields(params) -> list:
    return params if isinstance(params, list) else list(fields(params))


def listing(listed=sections) -> str:
    """`listed()`'s sections as lines: each item, what it does, and its options aligned."""
    every = [f for _, items in listed() for _, _, params in items for f in _fields(params)]
    width = max(len(_option(f)) for f in every)
    lines = []
    for heading, items in listed():
        lines += ["", heading]
        for name, what, params in items:
            lines.append(f"  {name}: {what}")
            lines += [f"    {_option(f):<{width}}  {f.metadata['help']}" for f in _fields(params)]
    return "\n".join(lines[1:])
