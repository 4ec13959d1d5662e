"""The detector measured alone: `bench clip` (per image, one per forward pass against batched)
and `bench detect` (against labelled images)."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from raypipe.bench.common import median
from raypipe.bench.registry import Overrides, arg, bench
from raypipe.bench.score import LABELS

# An open_clip architecture small enough to measure the code path around the model (the
# tests use the same one); the cost of an architecture does not depend on its weights.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@bench("clip", arg("--model", default="tiny-clip", help="an open_clip architecture (random weights)"),
       arg("--size", type=int, default=None, help="input side in pixels (default: the model's)"),
       arg("--sources", type=int, default=16), arg("--batch", type=int, default=16),
       arg("--rounds", type=int, default=3),
       help="CLIP detection per image: one per forward pass against batched")
def bench_clip(args) -> dict:
    """CLIP detection per image, one image per forward pass against `--batch`, through the
    detector's own path (prepare, forward, subject), on random weights saved as a checkpoint."""
    import open_clip
    import torch
    from omegaconf import OmegaConf

    from raypipe.config import DetectorCfg
    from raypipe.detection.clip import ClipDetector
    from raypipe.media import load_image
    from raypipe.media.images import SAMPLES

    torch.manual_seed(0)
    images = [load_image(f"sample:{SAMPLES[i % len(SAMPLES)]}") for i in range(args.sources)]
    per_image: dict[int, list[float]] = {1: [], args.batch: []}
    with tempfile.TemporaryDirectory(prefix="raypipe-bench-") as tmp:
        config = None
        if args.model == "tiny-clip":
            config = Path(tmp) / "tiny-clip.json"
            config.write_text(json.dumps(TINY_CLIP))
            open_clip.add_model_config(config)
        size = [args.size, args.size] if args.size else None
        model = open_clip.create_model(args.model, force_image_size=tuple(size) if size else None)
        checkpoint = Path(tmp) / "open_clip_pytorch_model.bin"
        torch.save(model.state_dict(), checkpoint)
        del model
        detectors = {b: ClipDetector(OmegaConf.structured(DetectorCfg(
            model=args.model, pretrained=str(checkpoint), model_config=str(config) if config else None,
            image_size=size, batch_size=b, num_cpus=os.cpu_count() or 1)))
            for b in per_image}
        for r in range(args.rounds + 1):  # the first round warms up
            for b, det in detectors.items():
                t0 = time.perf_counter()
                for i in range(0, len(images), b):
                    det.detect_prepared([det.prepare(img) for img in images[i:i + b]], ("a person", "an animal"))
                if r:
                    per_image[b].append((time.perf_counter() - t0) / len(images))
    one, batched = median(per_image[1]), median(per_image[args.batch])
    return {
        "model": args.model, "input": list(detectors[1].model.visual.image_size), "sources": args.sources,
        "rounds": args.rounds, "threads": torch.get_num_threads(),
        "ms_per_image": {"batch 1": round(one * 1000, 2), f"batch {args.batch}": round(batched * 1000, 2)},
        "images_per_s": {"batch 1": round(1 / one, 1), f"batch {args.batch}": round(1 / batched, 1)},
        "speedup": round(one / batched, 2),
    }


@bench("detect", arg("--labels", default=str(LABELS)),
       arg("--per-image", action="store_true", help="also each image's box, IoU and faces kept"),
       help="the detector against labelled images: box IoU, faces kept in frame",
       overrides=Overrides(("detector=saliency",), of="detector"))
def bench_detect(args) -> dict:
    """The detector against labelled images: box IoU, how much of each face every effect keeps
    in frame, time per image (see raypipe/score.py)."""
    from omegaconf import OmegaConf

    from raypipe.api import config
    from raypipe.bench import score

    detector = OmegaConf.to_object(config("demo", args.overrides).detector)
    return score.run(detector, args.labels, per_image=args.per_image)
