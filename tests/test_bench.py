"""Benchmark commands run end to end on inputs as small as they take, their figures checked
for sense: each runs its own renders, as CLI processes, so they have a tier of their own."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.bench


def test_bench_batch_measures_both_ways_and_its_figures_agree(tmp_path):
    """`bench batch` on one small video: the separate render and the batch are both measured,
    a rerun of the batch is a small part of it, and the CPU it counts fits the cores and wall."""
    proc = subprocess.run([sys.executable, "-m", "raypipe", "bench", "batch", "--videos", "1", "--runs", "1",
                           "--no-clip", "--width", "160", "--height", "90", "--fps", "10"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    one = result["detectors"]["saliency"]["1"]
    separate, batch = one["separate"], one["batch"]
    assert separate["detector_loads"] == batch["detector_loads"] == 0  # saliency: no model
    for r in (separate, batch):
        assert r["wall_s"] > 0 and r["peak_rss_mb"] > 50 and r["sum_rss_mb"] >= r["peak_rss_mb"]
        assert 0.5 < r["cpu_s"] and 0 < r["cores_busy"] <= 1.05  # the tree's CPU, within what the cores give
    assert batch["rerun_s"] < batch["wall_s"] and one["speedup"] == round(separate["wall_s"] / batch["wall_s"], 2)
    assert batch["detect_s"] > 0
    assert not list(tmp_path.iterdir())  # nothing of the bench is left where it ran


def test_bench_layers_measures_both_targets_and_the_variants_detect_once(tmp_path):
    """`bench layers` small (the demo's captions need 320x180): both pairs measured, their ratios
    those of their medians, the layers' job as long with and without them, and the variants'
    sources detected once, by the first."""
    proc = subprocess.run([sys.executable, "-m", "raypipe", "bench", "layers", "--runs", "1", "--width", "320",
                           "--height", "180", "--fps", "10"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    layers, variants = result["layers"], result["variants"]
    assert layers["plain"]["frames"] == layers["layers"]["frames"] == 100  # 10 s at 10 fps
    assert variants["variants"]["frames"] == 3 * variants["one"]["frames"]
    for pair, base, other in ((layers, "plain", "layers"), (variants, "one", "variants")):
        for s in (pair[base], pair[other]):
            assert s["wall_s_median"] > s["render_s_median"] > 0 and len(s["wall_s_all"]) == 1
        assert pair["ratio"] == round(pair[other]["wall_s_median"] / pair[base]["wall_s_median"], 3) > 0
        assert pair["render_ratio"] > 0 and pair["within_target"] == (pair["ratio"] <= pair["target"])
    assert variants["detected_once"] and variants["detect_s"][0][0] > 0 and variants["detect_s"][0][1:] == [0, 0]
    assert variants["detect_s_one"][0] > 0  # the single render detects too: its cache is as empty
    assert "layers: " in proc.stderr and "detected once" in proc.stderr  # the table
    assert not list(tmp_path.iterdir())  # nothing of the bench is left where it ran
