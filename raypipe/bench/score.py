"""Scores the detector against labelled images (`raypipe/bench/data/detect_labels.json`, shipped in
the wheel): the IoU of each subject box with its label, how much of each labelled face every camera effect keeps in
frame over its whole shot (the worst frame counts), and the detector's time per image.

Framing is what a person judges: a box a little off scores IoU 0.8 and may still be fine,
while a shot that cuts a face off at the eyes is not. Both are reported.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from raypipe.detection.detector import detect_all, expand
from raypipe.detection.faces import iou
from raypipe.frames.effects import Shot, make_params

# The labelled set: five photographs labelled by hand and three generated scenes.
LABELS = Path(__file__).parent / "data" / "detect_labels.json"

EFFECTS = ("static", "ken_burns", "punch_in", "pan", "reframe")
ASPECTS = {"16:9": (1920, 1080), "9:16": (1080, 1920)}
SHOT_S = 3.0
STEPS = 31  # frames sampled across each shot


def scene(size, body, head, seed: int) -> np.ndarray:
    """A generated photograph with exact ground truth: a figure (an ellipse for the body, a
    disk with eyes for the head) on a textured gradient."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 60 * xx / w, 110 + 40 * yy / h, 140 - 50 * xx / w], axis=-1)
    texture = cv2.GaussianBlur(rng.normal(0, 18, (h, w, 3)).astype(np.float32), (0, 0), 3)
    img = np.clip(base + texture, 0, 255).astype(np.uint8)
    cx, cy, ax, ay = body
    cv2.ellipse(img, (cx, cy), (ax, ay), 0, 0, 360, (200, 60, 40), -1, cv2.LINE_AA)
    hx, hy, r = head
    cv2.circle(img, (hx, hy), r, (225, 180, 150), -1, cv2.LINE_AA)
    for ex in (hx - r // 3, hx + r // 3):
        cv2.circle(img, (ex, hy - r // 6), max(2, r // 8), (40, 30, 30), -1, cv2.LINE_AA)
    cv2.ellipse(img, (hx, hy + r // 3), (r // 3, r // 8), 0, 0, 180, (120, 40, 40), 2, cv2.LINE_AA)
    return img


def face_kept(subject_box, face, size, effect: str, out: tuple[int, int], key=None) -> float:
    """The smallest fraction of the face's area on screen over the shot, with the camera
    framing the detected subject (and the faces the detector found, `key`)."""
    shot = Shot(effect, make_params(effect, {}), out[0], out[1], SHOT_S)
    area = (face[2] - face[0]) * (face[3] - face[1])
    worst = 1.0
    for p in np.linspace(0.0, 1.0, STEPS):
        x0, y0, x1, y1 = shot.screen_box(size, subject_box, float(p), region=face, key=key)
        scale = (x1 - x0) * (y1 - y0) / area  # screen pixels per source pixel, squared
        seen = max(0.0, min(x1, out[0]) - max(x0, 0.0)) * max(0.0, min(y1, out[1]) - max(y0, 0.0))
        worst = min(worst, seen / (area * scale))
    return worst


def run(detector_cfg, labels_path: str | os.PathLike, per_image: bool = True) -> dict:
    """Detects every labelled image with `detector_cfg` (a DetectorCfg) and scores it."""
    labels = json.loads(Path(labels_path).read_text())["images"]
    with tempfile.TemporaryDirectory(prefix="raypipe-score-") as tmp:
        uris = []
        for i, item in enumerate(labels):
            if "scene" in item:
                spec = item["scene"]
                path = os.path.join(tmp, f"scene-{i}.png")
                cv2.imwrite(path, cv2.cvtColor(scene(spec["size"], spec["body"], spec["head"], spec["seed"]),
                                               cv2.COLOR_RGB2BGR))
                uris.append(path)
            else:
                uris.append(item["source"])
        t0 = time.perf_counter()
        found, info = detect_all(detector_cfg, tuple(uris), ("a person", "an animal", "a vehicle", "food"))
        seconds = time.perf_counter() - t0
    subjects = expand(found)
    rows = []
    for uri, item in zip(uris, labels):
        subject = subjects[uri]
        row = {"image": item.get("source") or f"scene {item['scene']['seed']}", "kind": item["kind"],
               "iou": round(iou(subject.box, item["subject"]), 3), "box": [round(v) for v in subject.box]}
        if item["face"]:
            row["face_kept"] = {f"{effect} {aspect}": round(face_kept(subject.box, item["face"], subject.source_size,
                                                                      effect, out, subject.key), 3)
                                for effect in EFFECTS for aspect, out in ASPECTS.items()}
        row["faces_found"] = len(subject.faces)
        rows.append(row)
    kept = [v for r in rows for v in r.get("face_kept", {}).values()]
    return {
        "detector": info.detector,
        "images": len(rows),
        "mean_iou": round(float(np.mean([r["iou"] for r in rows])), 3),
        "face_shots": len(kept),
        "face_shots_whole": round(sum(v >= 0.999 for v in kept) / max(len(kept), 1), 3),
        "face_kept_mean": round(float(np.mean(kept)), 3) if kept else None,
        "face_kept_worst": round(float(np.min(kept)), 3) if kept else None,
        "ms_per_image": round(1000 * seconds / len(rows), 1),
        **({"per_image": rows} if per_image else {}),
    }
