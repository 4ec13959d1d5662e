"""What effects' and transitions' parameters share: frozen dataclasses whose fields carry one
line of help (`param`), checked on construction with errors that name the parameter."""
from __future__ import annotations

from dataclasses import dataclass

from raypipe.errors import EffectError
from raypipe.frames.view import EASINGS


def check(ok: bool, name: str, want: str, got) -> None:
    if not ok:
        raise EffectError(f"{name}: must be {want} (got {got!r})")


def check_easing(easing: str) -> None:
    check(easing in EASINGS, "easing", " or ".join(EASINGS), easing)


@dataclass(frozen=True)
class NoParams:
    pass
