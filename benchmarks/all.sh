#!/usr/bin/env bash
# Every benchmark, one after the other, each writing its section of BENCHMARKS.md:  bash benchmarks/all.sh
# (after scripts/setup.sh: .venv, the engine, the stand-in base image). About 50 minutes on 2 cores, most of it
# bench_build's cold builds; run one file alone with .venv/bin/python benchmarks/bench_X.py --write BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for bench in manifest sources capture build runtime share; do
    echo "== benchmarks/bench_$bench.py" >&2
    .venv/bin/python "benchmarks/bench_$bench.py" --write BENCHMARKS.md
done
echo "== benchmarks/bench_build.py --env yolo (the 6 GB YOLO environment, one run)" >&2
.venv/bin/python benchmarks/bench_build.py --env yolo --runs 1 --write BENCHMARKS.md
