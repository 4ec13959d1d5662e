"""docs/reference.md is what the schema's own help makes (raypipe.frames.reference), and every
key of the schema has help: a key added without it, or help edited without regenerating the
page, fails here."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from conftest import ROOT
from raypipe.errors import RaypipeError
from raypipe.frames import reference

pytestmark = pytest.mark.unit


def test_the_reference_is_what_the_schema_makes():
    written = (ROOT / "docs" / "reference.md").read_text()
    assert written == reference.markdown(), f"docs/reference.md is stale: run {reference.COMMAND}"


def test_every_schema_key_has_help():
    assert [key.path for key in reference.keys() if not key.help] == []


def test_every_key_is_in_the_reference_by_its_full_path():
    page = reference.markdown()
    paths = [key.path for key in reference.keys()]
    assert {"job.segments[].caption.text", "job.segments[].transition.type", "batch.each.list_field",
            "render.fps"} <= set(paths)
    assert [path for path in paths if "." in path and f"| `{path}` |" not in page] == []


SOURCE = '''
@dataclass
class Tricky:
    """Its docstring is no field's help."""

    # Above, on two lines:
    # both are its help.
    above: int = 1
    hash_in_string: str = "#not a comment"  # the comment after the code
    # A comment parted from its field by a blank line is not its help.

    parted: int = 0
    on_its_last_line: dict = field(
        default_factory=dict)  # after the call that spans two lines
    with_a_tool_comment: int = 2  # noqa: E501
    bare: int = 3
'''


def test_help_is_read_from_comments_above_and_after_but_not_from_strings():
    assert reference.comments(SOURCE) == {
        "above": "Above, on two lines: both are its help.",
        "hash_in_string": "the comment after the code",
        "parted": "",
        "on_its_last_line": "after the call that spans two lines",
        "with_a_tool_comment": "",
        "bare": "",
    }


@dataclass
class Inner:
    # Documented.
    documented: int = 1
    bare: int = 2


@dataclass
class Outer:
    # A group, whose keys follow it with its name before theirs.
    inner: Inner = field(default_factory=Inner)
    # A list of groups: its items' keys are named with [].
    items: list[Inner] = field(default_factory=list)


def test_keys_have_full_paths_and_a_key_without_help_stops_the_generator():
    found = reference.keys(Outer)
    assert [(k.path, k.default) for k in found] == [
        ("inner", ""), ("inner.documented", "1"), ("inner.bare", "2"),
        ("items", "[]"), ("items[].documented", "1"), ("items[].bare", "2")]
    with pytest.raises(RaypipeError) as raised:
        reference.documented(found)
    assert raised.value.where == "inner.bare" and "no help" in raised.value.reason
