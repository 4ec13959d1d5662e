"""A batch's report.html: the run's totals, then one line per row in the rows' order, with a
link to its video or the row's one-line error. No frame is decoded for it: a batch of 10,000
rows gets a page of 10,000 lines, not 10,000 thumbnails."""
from __future__ import annotations

import html
import os

STATUS_COLOURS = {"done": "#2e7d32", "skipped": "#546e7a", "failed": "#c62828"}


def _href(output: str, page_dir: str) -> str:
    """A local video relative to the page (the run's folder and its videos can be served or
    opened side by side); a URI (s3://, https://) as it is."""
    if "://" in output or not os.path.isabs(output):
        return output
    return os.path.relpath(output, page_dir)


def batch_html(report: dict, page_dir: str) -> str:
    esc = html.escape
    actors = report["detector_actors"]
    facts = {
        "rows": report["rows"], "videos": report["videos"], "done": report["done"], "skipped": report["skipped"],
        "failed": report["failed"], "frames rendered": report["frames"], "seconds": f'{report["seconds"]:.1f}',
        "videos per hour": report["videos_per_hour"], "detector": report["detector"],
        "detector loads": report["detector_loads"],
        "detected in": f'{actors} actor{"s" * (actors > 1)}' if actors else "the driver",
        "executor": report["executor"],
        "tasks run again": len(report["retries"]), "output root": report["root"], "manifest": report["manifest"],
    }
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts.items())
    lines = []
    for r in sorted(report["records"], key=lambda r: r["row"]):
        if r["output"] and r["status"] != "failed":
            cell = f'<a href="{esc(_href(r["output"], page_dir), quote=True)}">{esc(r["output"])}</a>'
        else:
            cell = f'<span class="error">{esc(r["error"] or "")}</span>'
        colour = STATUS_COLOURS.get(r["status"], "#222")
        lines.append(f'<tr class="{esc(r["status"])}"><td class="num">{r["row"]}</td><td>{esc(r["id"])}</td>'
                     f'<td style="color:{colour}">{esc(r["status"])}</td><td>{cell}</td>'
                     f'<td class="num">{r["frames"]}</td><td class="num">{r["seconds"]:.1f}</td></tr>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raypipe batch: {esc(report["rows"])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
table {{ border-collapse: collapse; }} th, td {{ padding: 2px 12px 2px 0; text-align: left; vertical-align: top; }}
.num {{ text-align: right; }} .error {{ color: #c62828; }} .videos tr:nth-child(even) {{ background: #f6f6f6; }}
</style></head><body>
<h1>raypipe batch: {esc(report["rows"])}</h1>
<table>{fact_rows}</table>
<h2>Videos</h2>
<table class="videos"><thead><tr><th class="num">row</th><th>id</th><th>status</th><th>video or error</th>
<th class="num">frames</th><th class="num">seconds</th></tr></thead>
<tbody>{"".join(lines)}</tbody></table>
</body></html>
"""
