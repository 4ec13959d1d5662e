"""What a detection pass says of itself, and the model loads its owner counts: values that
cross processes (a detector actor returns them) and modules (the report, the cache's summary,
the looks, the batch), so they are typed, not dicts or a module's global."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class LoadCounter:
    """The model loads of one owner (a render's detection, a batch, a detector actor), not of
    the process: two detectors in one process each count their own."""

    def __init__(self) -> None:
        self.count = 0

    def add(self) -> None:
        self.count += 1


@dataclass(frozen=True)
class DetectionInfo:
    detector: str  # the one that ran (or made the cached entries): "saliency", "clip:<model>/<weights>"
    fallback_reason: str | None  # why it is not the configured one
    detections_reused: int  # sources read from the detection cache
    device: str | None  # where the model ran; None when no detector was made (all cached)
    clip_loads: int  # model loads this pass cost
    seconds: float
    bytes_read: int  # from storage, by the detector

    @classmethod
    def merged(cls, infos: Sequence[DetectionInfo]) -> DetectionInfo:
        """One pass's, of parts that ran side by side (a pool's actors, each on some of the
        sources): the longest part's seconds, the first reason given, the counts summed."""
        first = infos[0]
        return cls(detector=first.detector,
                   fallback_reason=next((i.fallback_reason for i in infos if i.fallback_reason), None),
                   detections_reused=sum(i.detections_reused for i in infos), device=first.device,
                   clip_loads=sum(i.clip_loads for i in infos), seconds=max(i.seconds for i in infos),
                   bytes_read=sum(i.bytes_read for i in infos))
