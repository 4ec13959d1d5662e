"""report.json is true in every mode that writes it: what only Ray measures is null where
Ray did not run, and where each task ran is what its executor recorded. Each mode runs as
the CLI (a process of its own: an embedded Ray starts only where none is up)."""
import pytest

from conftest import compose_job, read_report, render, run_cli

pytestmark = pytest.mark.render

RAY_ONLY = ("segment_workers", "segment_workers_with_torch", "object_store_bytes", "detections_held_by_nodes")
FIXTURE = ("--config-dir", "tests/conf", "+job=fixture", "detector=saliency")


def cli(tmp_path, name, *args):
    proc = run_cli(*FIXTURE, *args, f"hydra.run.dir={tmp_path / name}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return read_report(tmp_path / name)


def test_the_drivers_threads_claim_nothing_of_ray(tmp_path):
    r = cli(tmp_path, "run", "render.max_frames_per_task=10", "render.width=160", "render.height=90")
    assert r["executor"] == "threads" and r["ray_started"] is False
    assert all(r[key] is None for key in RAY_ONLY) and r["masks_zero_copy"] is None
    assert {run["executor"] for run in r["segment_runs"]} == {"driver"}
    assert r["frames_rendered_by_the_driver"] == r["frames"] and r["tasks"] == r["chunks"] == len(r["segment_runs"])
    assert r["max_frames_per_task"] == 10 and max(run["frames"] for run in r["segment_runs"]) <= 10
    # Again, from the cache: no task, nothing started, nothing claimed.
    again = cli(tmp_path, "again", "render.max_frames_per_task=10", "render.width=160", "render.height=90")
    assert again["tasks"] == 0 and again["chunks"] == r["chunks"] and again["ray_started"] is False
    assert all(run["reused"] and run["executor"] == "" for run in again["segment_runs"])
    assert again["frames_rendered_by_the_driver"] == 0 and all(again[key] is None for key in RAY_ONLY)


def test_the_head_start_counts_the_drivers_frames_and_rays_apart(tmp_path):
    r = cli(tmp_path, "run", "ray.min_saving_s=0", "render.cache=false")
    assert r["executor"] == "threads+ray" and r["ray_started"] is True
    by = {e: sum(run["frames"] for run in r["segment_runs"] if run["executor"] == e) for e in ("driver", "ray")}
    assert by["driver"] == r["frames_rendered_by_the_driver"] > 0 and by["driver"] + by["ray"] == r["frames"]
    assert by["ray"] > 0 and r["masks_zero_copy"] is True and r["object_store_bytes"] > 0


def test_rays_workers_report_what_ray_measured(ray_local, tmp_path):
    r = render(compose_job("detector=saliency"), tmp_path / "run")
    assert r["executor"] == "ray" and r["ray_started"] is True
    assert {run["executor"] for run in r["segment_runs"]} == {"ray"} and r["frames_rendered_by_the_driver"] == 0
    assert r["segment_workers"] >= 1 and r["segment_workers_with_torch"] == 0 and r["masks_zero_copy"] is True
    assert r["object_store_bytes"] > 0 and len(r["detections_held_by_nodes"]) == 1
