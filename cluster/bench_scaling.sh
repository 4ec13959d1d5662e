#!/usr/bin/env bash
# Scaling on one machine with many cores: `bench compare` of a job (default +job=bench) with
# raypipe pinned to 1, 4, 8 and 16 cores (taskset) and given as many Ray CPUs, and the
# single-process renderer on one core as the yardstick. Writes OUT_DIR/bench-N.json.
#   bash cluster/bench_scaling.sh OUT_DIR [hydra overrides...]
set -euo pipefail
out=${1:?usage: bench_scaling.sh OUT_DIR [overrides...]}
shift
overrides=("$@")
[ ${#overrides[@]} -gt 0 ] || overrides=(+job=bench)
mkdir -p "$out"
py=${PYTHON:-python3}
taskset -c 0 "$py" -m raypipe bench compare --runs 1 --variants sequential --out "$out/bench-sequential.json" \
  "${overrides[@]}"
for n in 1 4 8 16; do
  [ "$n" -le "$(nproc)" ] || break
  taskset -c "0-$((n - 1))" "$py" -m raypipe bench compare --runs 1 --variants raypipe --out "$out/bench-$n.json" \
    "${overrides[@]}" "ray.num_cpus=$n"
done
"$py" - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
runs = {p.stem.split("-")[1]: json.loads(p.read_text()) for p in sorted(out.glob("bench-*.json"))}
seq = runs.pop("sequential")["variants"]["sequential"]
print(f"sequential (1 core): {seq['median_s']} s, segments {seq['stages']['segments']} s")
base = runs.get("1")
for n, r in sorted(runs.items(), key=lambda kv: int(kv[0])):
    v = r["variants"]["raypipe"]
    speedup = base["variants"]["raypipe"]["stages"]["segments"] / v["stages"]["segments"] if base else None
    print(f"{n:>2} cores: {v['median_s']} s to the result, segments {v['stages']['segments']} s"
          + (f", segments speedup {speedup:.1f}x" if speedup else ""))
PY
