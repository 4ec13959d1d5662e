"""The package imports one way, lowest layer first, with no cycle: every import statement
counts, those inside functions too (raypipe.code reads them from the source)."""
import pytest

from raypipe import code

pytestmark = pytest.mark.unit

# Lowest first. A module may import its own layer's modules and those of the layers below.
LAYERS = (
    ("raypipe.errors", "raypipe.config", "raypipe.code"),
    ("raypipe.storage",),
    ("raypipe.media",),
    ("raypipe.detection",),
    ("raypipe.frames",),
    ("raypipe.plan",),
    ("raypipe.engine",),
    ("raypipe.look",),
    ("raypipe.batch",),
    ("raypipe.api", "raypipe"),  # the package root is the API's facade: it imports nothing else
    ("raypipe.serve",),  # the service composes requests as the API does
    ("raypipe.bench",),
    ("raypipe.__main__",),
)


def layer(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "raypipe" and module.startswith(name + ".")):
                best = i
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_is_in_a_layer_and_imports_only_downward():
    upward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
              for m, targets in sorted(code.graph().items()) for t in sorted(targets) if layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    assert cycles(code.graph()) == []


def test_the_graph_sees_imports_inside_functions():
    # raypipe.detection.detector imports the CLIP module only inside a function (torch stays out of
    # a worker that never loads CLIP); the graph must still see that edge.
    assert "raypipe.detection.clip" in code.graph()["raypipe.detection.detector"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}) == [
        ["a", "b", "c"]]
