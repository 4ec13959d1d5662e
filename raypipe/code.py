"""raypipe's own import graph, read from the source (every import statement, those inside
functions too): what a cache key hashes as "the code", and what the layering test checks."""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from pathlib import Path

from raypipe.config import user_cache

PACKAGE = Path(__file__).parent
NAME = PACKAGE.name


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The package module an imported name lives in (`raypipe.media.probe` -> `raypipe.media`)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


@functools.lru_cache(maxsize=1)
def graph() -> dict[str, frozenset[str]]:
    """module -> the package's modules it imports, at any depth of its code. `from a import b`
    counts as importing `a.b` where b is a module, else `a`. Parsing the package costs ~0.3 s,
    which every render would pay for its cache keys: the graph is kept on disk under the
    files' sizes and modification times, and made again when any changes."""
    known = modules()
    stamp = hashlib.sha256(repr([(m, p.stat().st_size, p.stat().st_mtime_ns) for m, p in known.items()]).encode())
    saved = _saved_graph_path()
    try:
        data = json.loads(saved.read_text())
        if data["stamp"] == stamp.hexdigest():
            return {m: frozenset(v) for m, v in data["edges"].items()}
    except (OSError, ValueError, KeyError):
        pass
    edges = _parsed(known)
    try:
        saved.parent.mkdir(parents=True, exist_ok=True)
        fresh = saved.with_name(f".{saved.name}.{os.getpid()}")
        fresh.write_text(json.dumps({"stamp": stamp.hexdigest(), "edges": {m: sorted(v) for m, v in edges.items()}}))
        fresh.replace(saved)  # whole, at once: renders side by side never read half of it
    except OSError:
        pass  # a read-only home: parse again next time
    return edges


def _saved_graph_path() -> Path:
    # Beside the cache, not in it: the cache's eviction counts and removes what it holds.
    return user_cache("raypipe-code") / f"graph-{hashlib.sha256(str(PACKAGE).encode()).hexdigest()[:12]}.json"


def _parsed(known: dict[str, Path]) -> dict[str, frozenset[str]]:
    edges: dict[str, frozenset[str]] = {}
    for mod, path in known.items():
        found: set[str] = set()
        is_pkg = path.name == "__init__.py"
        for node in _statements(ast.parse(path.read_text(), str(path)).body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod if is_pkg else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    prefix = f"{base}.{node.module}" if node.module else base
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" for a in node.names]
            for target in targets:
                if not (target == NAME or target.startswith(NAME + ".")):
                    continue
                hit = _resolve(target, known)
                if hit and hit != mod:
                    found.add(hit)
        edges[mod] = frozenset(found)
    return edges


def _statements(body):
    """Every statement, at any depth (functions, classes, branches): imports are statements, so
    the expressions, most of a module's nodes, need no visit."""
    for node in body:
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, name, ()) or ())


def closure(roots: tuple[str, ...]) -> tuple[str, ...]:
    """The modules these import, directly or not, themselves included, and the packages
    Python runs on the way to each (sorted)."""
    edges, seen, todo = graph(), set(), list(roots)
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            todo.extend(edges.get(mod, ()))
    # A package's __init__ runs before its modules; what it imports lazily (the root's API) does not.
    parents = {p for m in seen for p in _parents(m)}
    return tuple(sorted(seen | parents))


def _parents(module: str):
    while "." in module:
        module = module.rpartition(".")[0]
        yield module


def files(roots: tuple[str, ...]) -> tuple[tuple[str, Path], ...]:
    """(path relative to the package's parent, file) of the closure: a module's place is part
    of what it is, so a moved module changes a key as an edited one does."""
    known = modules()
    return tuple((known[m].relative_to(PACKAGE.parent).as_posix(), known[m]) for m in closure(roots))
