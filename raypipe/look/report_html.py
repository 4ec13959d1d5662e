"""report.html: one self-contained page (images embedded) beside report.json: the video's
facts, the stages, a timeline of the tasks (a lane per node and worker, so stragglers and
idle cores show), the detection sheet, the first, middle and last frame of each segment,
and the composed config."""
from __future__ import annotations

import base64
import html
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import cv2
import numpy as np
from omegaconf import OmegaConf

from raypipe.errors import MediaError
from raypipe.look import sheet
from raypipe.media import read_frames
from raypipe.storage import Storage

log = logging.getLogger("raypipe")

THUMB_W = 192


def _img(rgb: np.ndarray) -> str:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("could not encode an image")
    return f"data:image/jpeg;base64,{base64.b64encode(data.tobytes()).decode()}"


def thumbnails(report: dict, segments: list[tuple[int, int]]) -> list[list[tuple[int, np.ndarray]]]:
    """The first, middle and last frame of each segment ([start, end) global frames), read
    back from the published video, as thumbnails; segments side by side on a thread per CPU
    (each seek decodes from a key frame, and the decoder releases the GIL)."""
    fps = Fraction(report["fps_exact"])

    def strip(segment: tuple[int, int]) -> list[tuple[int, np.ndarray]]:
        start, end = segment
        out = []
        for k in sorted({start, (start + end - 1) // 2, end - 1}):
            frame = next(read_frames(report["output"], k / fps, 1.0, fps, 1), None)
            if frame is not None:
                h, w = frame.shape[:2]
                out.append((k, cv2.resize(frame, (THUMB_W, round(h * THUMB_W / w)), interpolation=cv2.INTER_AREA)))
        return out

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="thumbnails") as pool:
        return list(pool.map(strip, segments))


def _stages(stages: dict) -> str:
    total = stages.get("total") or max(stages.values()) or 1.0
    rows = "".join(
        f'<tr><td>{html.escape(k)}</td><td class="num">{v:.2f} s</td>'
        f'<td><div class="bar" style="width:{100 * v / total:.1f}%"></div></td></tr>'
        for k, v in stages.items() if k != "total")
    return f'<table class="stages">{rows}<tr><th>total</th><th class="num">{total:.2f} s</th><td></td></tr></table>'


def task_timeline(runs: list[dict]) -> str:
    """An SVG lane per (node, worker process, and within a process each task that ran beside
    another: the driver's threads); a bar per task from its start to its end."""
    made = [r for r in runs if not r.get("reused") and r.get("started")]
    if not made:
        return "<p>Every chunk came from the cache: no task ran.</p>"
    t0 = min(r["started"] for r in made)
    span = max(r["started"] + r["seconds"] for r in made) - t0 or 1.0
    lanes: dict[tuple, list[dict]] = {}  # (node, pid, slot) -> its tasks, packed first-fit by start
    for r in sorted(made, key=lambda r: r["started"]):
        process = (r["node_id"][:8] or "driver", r["pid"])
        slot = 0
        while lanes.get((*process, slot)) and lanes[(*process, slot)][-1]["started"] + \
                lanes[(*process, slot)][-1]["seconds"] > r["started"] + 1e-6:
            slot += 1
        lanes.setdefault((*process, slot), []).append(r)
    threaded = {(node, pid) for node, pid, slot in lanes if slot}
    width, lane_h, left = 900, 26, 150
    parts = []
    for i, (node, pid, slot) in enumerate(sorted(lanes)):
        y = 20 + i * lane_h
        thread = f" · {slot + 1}" if (node, pid) in threaded else ""
        parts.append(f'<text x="4" y="{y + 16}" class="lane">node {node} · pid {pid}{thread}</text>')
        for r in lanes[(node, pid, slot)]:
            x = left + (r["started"] - t0) / span * (width - left - 10)
            w = max(1.5, r["seconds"] / span * (width - left - 10))
            hue = (r["index"] * 67) % 360
            title = (f'segment {r["index"]}, frames {r["start"]}-{r["start"] + r["frames"] - 1}: '
                     f'{r["seconds"]:.2f} s')
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 6}" '
                         f'style="fill:hsl({hue},60%,55%)"><title>{html.escape(title)}</title></rect>')
    height = 30 + len(lanes) * lane_h
    axis = (f'<text x="{left}" y="12" class="lane">0 s</text>'
            f'<text x="{width - 60}" y="12" class="lane">{span:.2f} s</text>')
    return (f'<svg class="timeline" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
            f'{axis}{"".join(parts)}</svg>')


def render_html(report: dict, config_yaml: str, sheet_image: np.ndarray | None,
                strips: list[list[tuple[int, np.ndarray]]]) -> str:
    facts = {
        "video": report["output"], "frames": report["frames"], "size": f'{report["width"]}x{report["height"]}',
        "fps": report["fps_exact"], "duration": f'{report["duration_s"]:.3f} s', "segments": report["segments"],
        "tasks": report["tasks"], "detector": report["detector"], "CLIP loads": report["clip_loads"],
        "Ray started": report.get("ray_started"), "retries": len(report.get("retries", [])),
        "chunks reused": report.get("cache", {}).get("chunks_reused", 0), "run id": report["run_id"],
    }
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    sheet = (f'<img class="sheet" alt="detections" src="{_img(sheet_image)}">' if sheet_image is not None
             else "<p>No detection sheet.</p>")
    thumbs = "".join(
        f'<div class="strip"><h3>segment {i}</h3>' + "".join(
            f'<figure><img alt="frame {k}" src="{_img(t)}"><figcaption>frame {k}</figcaption></figure>'
            for k, t in strip) + "</div>"
        for i, strip in enumerate(strips))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raypipe: {html.escape(report["job"])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }} h3 {{ font-size: 13px; margin: 4px 0; }}
table {{ border-collapse: collapse; }} th, td {{ padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }}
.num {{ text-align: right; }} .stages td:last-child {{ width: 420px; }}
.bar {{ background: #4a7fd4; height: 12px; }}
.timeline {{ background: #f6f6f6; }} .lane {{ font: 11px system-ui, sans-serif; fill: #444; }}
.sheet {{ max-width: 100%; }} .strip {{ display: inline-block; margin: 0 14px 10px 0; vertical-align: top; }}
figure {{ display: inline-block; margin: 0 4px 0 0; }} figcaption {{ font-size: 11px; color: #555; }}
pre {{ background: #f6f6f6; padding: 10px; overflow: auto; max-height: 400px; }}
</style></head><body>
<h1>raypipe: {html.escape(report["job"])}</h1>
<table>{fact_rows}</table>
<h2>Stages</h2>{_stages(report["stages"])}
<h2>Tasks</h2>{task_timeline(report["segment_runs"])}
<h2>Detections</h2>{sheet}
<h2>Segments: first, middle and last frame</h2>{thumbs}
<h2>Config</h2><pre>{html.escape(config_yaml)}</pre>
</body></html>
"""


def sheet_for(cfg):
    """The driver's `sheet` hook: the detection sheet, or None (with a warning) where a source
    no longer reads (the video is out: say why the page is not)."""
    def make(plan, detections, info, counter):
        try:
            return sheet.detection_sheet(plan, detections, info.detector, cfg.detector.keyframe_rate, counter)
        except (MediaError, OSError, ValueError) as e:
            log.warning("report.html not written: %s", str(e).splitlines()[0])
            return None

    return make


def write_page(cfg, rendered, run_dir: str) -> None:
    """report.html beside report.json (and beside the video, with storage.root set)."""
    report = rendered.report.to_dict()
    image = rendered.sheet
    if image is None:
        return  # the sheet could not be made: `sheet_for` said why
    try:
        strips = thumbnails(report, [(s.start, s.end) for s in rendered.plan.segments])
        page = render_html(report, OmegaConf.to_yaml(cfg), image, strips).encode()
    except (MediaError, OSError, ValueError) as e:  # the video is out; say why the page is not
        log.warning("report.html not written: %s", str(e).splitlines()[0])
        return
    Storage(run_dir).write_bytes("report.html", page)
    if report["run"] != run_dir:
        Storage(report["run"]).write_bytes("report.html", page)
