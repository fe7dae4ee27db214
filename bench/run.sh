#!/usr/bin/env bash
# `make bench`: Ferrotype against the seed's sharp Lambda. Builds what it measures, installs the pinned
# sharp, then runs every measurement and writes bench/out/report.md.
#
#   bash bench/run.sh                          # synthetic photos generated into bench/out/synthetic
#   bash bench/run.sh ~/Pictures/some-photos   # real photos: use these for figures you quote
#   BENCH_ARGS="--rounds 5 --skip-largest" bash bench/run.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d bench/node_modules/sharp ] || [ bench/package-lock.json -nt bench/node_modules ]; then
  npm ci --prefix bench --no-audit --no-fund
fi

target_dir="${CARGO_TARGET_DIR:-target}"
# The benchmark itself, the four Lambda bootstraps (cold start, sizes) and the CLI (throughput).
cargo build --release -p ferrotype-bench -p ferrotype \
  -p validate -p detect-faces -p render-variant -p record-result

echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
# Timings are only meaningful on an otherwise idle machine; nice keeps the run polite when it is not.
# shellcheck disable=SC2086
exec nice -n 5 "$target_dir/release/ferrotype-bench" all --bin-dir "$target_dir/release" ${BENCH_ARGS:-} "$@"
