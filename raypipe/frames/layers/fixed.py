"""What the text, image and box layers share: one bitmap of a size known when the job is
planned, put at its anchor, or for `auto` at the first anchor clear of the subject."""
from __future__ import annotations

from raypipe.errors import JobError
from raypipe.frames.layers.anchors import AUTO_ORDER, origin


def overlaps(rect: tuple[float, float, float, float], boxes) -> bool:
    return any(min(rect[2], b[2]) > max(rect[0], b[0]) and min(rect[3], b[3]) > max(rect[1], b[1]) for b in boxes)


def within(cfg, key: str, where: str, lo: float, hi: float, default: float | None = None) -> float:
    """cfg[key] (or `default` where it is null), checked to lie in (lo, hi]."""
    value = cfg[key] if cfg[key] is not None else default
    if not lo < value <= hi:
        raise JobError(f"{where}.{key}", f"must be in ({lo:g}, {hi:g}] (got {value})")
    return float(value)


class Fixed:
    """A layer kind of one bitmap of `shape` (height, width): the subclass is a frozen
    dataclass with that field, and a `bitmap(variant, counter)`."""

    shape: tuple[int, int]
    follows_subject = False  # put at its position unless it keeps clear
    sources: tuple[str, ...] = ()  # the files it reads (an image's)

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return (self.shape,)

    def predraw(self, variant: int) -> None:
        """Nothing to draw on the driver once placed: it was drawn when planned, or is read
        by each task."""

    def renamed(self, name) -> Fixed:
        """The same, its file (if any) named `name(uri)`: by content in a key, or where it was staged."""
        return self

    def place(self, layer, subjects, faces, out_w: int, out_h: int, segment: int) -> tuple[int, tuple[int, int]]:
        """Its bitmap (the one) and origin over `segment`: at its position; kept clear of the
        subject's boxes and the faces (screen boxes over the segment's frames it is on) where
        it avoids the subject, else a JobError naming the layer."""
        if not layer.keeps_clear:
            return 0, origin(layer.position, self.shape, out_w, out_h, layer.margin, layer.offset)
        names = AUTO_ORDER if layer.position == "auto" else (layer.position,)
        h, w = self.shape
        for name in names:
            x, y = origin(name, self.shape, out_w, out_h, layer.margin, layer.offset)
            if not overlaps((x, y, x + w, y + h), [*subjects, *faces]):
                return 0, (x, y)
        where = "at any position" if layer.position == "auto" else f"at position {layer.position}"
        raise JobError(layer.where, f"cannot keep clear of the subject and the faces of segment {segment} {where}; "
                                    "make it smaller, choose another position, or drop avoid")
