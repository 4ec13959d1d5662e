"""docs/reference.md, made from the schema's own help: every key of the config (raypipe/config.py)
with its full path, type, default and what it does, then every effect's and transition's
parameters as `python -m raypipe effects` lists them (frames/catalog.py, hence this layer).

A field's help is its `param(default, help)`, else its comments: those after code on the
field's own lines and the comment lines right above it. They are read with `tokenize`, so a
`#` inside a string is never taken for one, and a comment parted from the field by a blank
line is not its help. A key with no help stops the generator, naming the key.

    python -m raypipe.frames.reference docs/reference.md   # write it; with no path, print it
"""
from __future__ import annotations

import ast
import inspect
import io
import sys
import tokenize
import typing
from dataclasses import MISSING as NO_DEFAULT, Field, dataclass, fields, is_dataclass
from pathlib import Path

from omegaconf import MISSING

from raypipe.config import CaptionCfg, Config
from raypipe.errors import RaypipeError
from raypipe.frames.catalog import sections, yaml_value

# Comments that speak to a tool, not to the reader.
TOOL_COMMENTS = ("noqa", "type:", "pragma", "fmt:")
COMMAND = "python -m raypipe.frames.reference docs/reference.md"


@dataclass(frozen=True)
class Key:
    """One key of the config: `path` as an override or an error names it (`job.segments[].source`)."""

    path: str
    type: str
    default: str
    help: str


def comments(source: str) -> dict[str, str]:
    """field -> the help its comments give, for each annotated field of the first class in `source`."""
    alone, after_code = _comment_lines(source)
    found: dict[str, str] = {}
    schema = next(node for node in ast.parse(source).body if isinstance(node, ast.ClassDef))
    for stmt in schema.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        above, line = [], stmt.lineno - 1
        while line in alone:
            above.insert(0, alone[line])
            line -= 1
        own = [after_code[n] for n in range(stmt.lineno, stmt.end_lineno + 1) if n in after_code]
        found[stmt.target.id] = " ".join(text for text in above + own if text)
    return found


def _comment_lines(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """(line -> a comment alone on its line, line -> a comment after code), tool comments left out."""
    alone: dict[int, str] = {}
    after_code: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        text = token.string.lstrip("#").strip()
        if text.startswith(TOOL_COMMENTS):
            continue
        line, column = token.start
        (after_code if token.line[:column].strip() else alone)[line] = text
    return alone, after_code


def keys(schema: type = Config, prefix: str = "") -> list[Key]:
    """Every key under `schema`, depth first in the order of its fields; a dataclass field is a
    key too (its help says what the group is), then its own keys follow."""
    notes = comments(inspect.getsource(schema))
    hints = typing.get_type_hints(schema)
    found = []
    for f in fields(schema):
        path = prefix + f.name
        found.append(Key(path, str(f.type), _default(f), f.metadata.get("help") or notes.get(f.name, "")))
        inner, many = _inner(hints[f.name])
        if inner is not None:
            found += keys(inner, f"{path}[]." if many else f"{path}.")
    return found


def _inner(hint) -> tuple[type | None, bool]:
    """(the dataclass a field holds, through Optional, and whether in a list), or (None, False)."""
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is list:
        [item] = typing.get_args(hint)
        return (item, True) if is_dataclass(item) else (None, False)
    return (hint, False) if is_dataclass(hint) else (None, False)


def _default(f: Field) -> str:
    value = f.default if f.default is not NO_DEFAULT else f.default_factory()
    if value == MISSING:
        return "required"
    if is_dataclass(value):
        return ""  # a group: its keys follow
    return _value(value)


def _value(value) -> str:
    """A default as a job file writes it."""
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return yaml_value(value)


def documented(found: list[Key]) -> list[Key]:
    """The keys, if each has help; else the first without it, as an error naming the key."""
    bare = next((key for key in found if not key.help), None)
    if bare is not None:
        raise RaypipeError("no help: give the field a comment (on its line or right above it) or "
                           "param(default, help) where it is defined", bare.path)
    return found


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def _table(rows: list[Key]) -> list[str]:
    return ["| key | type | default | what it does |", "|---|---|---|---|",
            *(f"| {_code(k.path)} | {_code(k.type)} | {_code(k.default)} | {_cell(k.help)} |" for k in rows), ""]


HEADER = f"""# Configuration reference

Generated from the schema's own help by `{COMMAND}`: edit the help in
[raypipe/config.py](../raypipe/config.py) (a `param` or a comment on or above the field) and
run that again; `tests/test_reference.py` fails while this page differs from what it makes.

Every key can be set in a job file or as an override (`render.fps=24`). A key under
`job.segments[]` belongs to each segment: in a job file it goes under `segments:`, in an
override it names the segment by its index from 0 (`job.segments.1.duration=3`). Defaults are
written as a job file writes them; `required` has none. `python -m raypipe render --help` and
`--cfg job` show the composed config.
"""


def markdown() -> str:
    """The whole reference page."""
    found = documented(keys())
    lines = [HEADER]
    for group in fields(Config):
        [top] = [k for k in found if k.path == group.name]
        lines += [f"## {group.name}", "", top.help, "",
                  *_table([k for k in found if k.path.startswith(group.name + ".")])]
    for heading, items in sections():
        if any(params is CaptionCfg for _, _, params in items):
            continue  # a segment's caption, whose keys are above
        kind, _, what = heading.partition(": ")
        lines += [f"## {kind.capitalize()}", "", what[0].upper() + what[1:] + ".", ""]
        for name, does, params in items:
            lines += [f"### {name}", "", does, ""]
            lines += _table([Key(f"params.{f.name}", str(f.type), _value(f.default), f.metadata["help"])
                             for f in fields(params)]) if fields(params) else []
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> None:
    try:
        text = markdown()
    except RaypipeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
