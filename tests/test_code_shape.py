"""The shape the code keeps as it grows: no function in raypipe/ over 80 lines, no class made
inside a function, and no state kept in a closure's cells (`nonlocal`) but in small helpers."""
import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "raypipe"
LONGEST = 80
SMALL_HELPER = 15


def shapes():
    """(what, module, name, lines) for every function, class in a function and nonlocal."""
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE.parent))
        yield from _walk(ast.parse(path.read_text()), module, [])


def _walk(node, module, enclosing):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield "function", module, child.name, child.end_lineno - child.lineno + 1
            yield from _walk(child, module, [*enclosing, child])
        elif isinstance(child, ast.ClassDef):
            if any(isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for f in enclosing):
                yield "class in a function", module, child.name, 0
            yield from _walk(child, module, [*enclosing, child])
        elif isinstance(child, ast.Nonlocal):
            f = enclosing[-1]
            yield "nonlocal", module, f.name, f.end_lineno - f.lineno + 1
        else:
            yield from _walk(child, module, enclosing)


def test_no_function_is_longer_than_80_lines():
    long = [f"{m}::{n} ({lines} lines)" for what, m, n, lines in shapes() if what == "function" and lines > LONGEST]
    assert not long


def test_no_class_is_made_inside_a_function():
    assert not [f"{m}::{n}" for what, m, n, _ in shapes() if what == "class in a function"]


def test_closures_keep_no_state_but_in_small_helpers():
    assert not [f"{m}::{n} ({lines} lines)" for what, m, n, lines in shapes()
                if what == "nonlocal" and lines > SMALL_HELPER]


def test_the_checks_see_what_they_look_for():
    source = "def f():\n    class C: pass\n    def g():\n        nonlocal x\n" + "    pass\n" * 90
    found = {(what, name) for what, name, _ in
             ((w, n, line) for w, _, n, line in _walk(ast.parse(source), "m", []))}
    assert {("function", "f"), ("class in a function", "C"), ("nonlocal", "g")} <= found
