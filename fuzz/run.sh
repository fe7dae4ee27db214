#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) each, one after the other, and prints the
# executions per target. Works on the stable toolchain (see README.md for why RUSTC_BOOTSTRAP=1).
#
#   fuzz/run.sh                         # all targets, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh probe  # some targets, longer
#   FUZZ_SANITIZER=address fuzz/run.sh  # with AddressSanitizer (slower; none by default)
#
# Crashes land in fuzz/artifacts/<target>/; the growing corpus in fuzz/corpus/<target>/ (both ignored
# by git). Exits non-zero if any target found a crash, a leak, a timeout or ran out of memory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cd "$here"

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
all_targets=(keys event config probe render working_copy faces asl_definition asl_paths)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

# cargo-fuzz passes nightly-only rustc flags (-Zsanitizer, and some -Z options cargo-fuzz always adds);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$here/target"
fuzz=(cargo fuzz)
build_flags=(--sanitizer "$sanitizer" --debug-assertions)

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }

# Resolve dependencies to the versions the main workspace ships with (the fuzz workspace has its own lock).
[ -f Cargo.lock ] || cp "$repo/Cargo.lock" Cargo.lock

# Seeds: the committed ones, plus the project's own JSON documents (copied each run, so they follow
# the repository).
mkdir -p corpus logs
seed_dirs() {
  case "$1" in
    probe|render) echo "seeds/images" ;;
    *) echo "seeds/$1" ;;
  esac
}
mkdir -p seeds/generated/config seeds/generated/asl_definition
cp "$repo/ferrotype.json" seeds/generated/config/ferrotype.json
cp "$repo/statemachine/pipeline.asl.json" seeds/generated/asl_definition/pipeline.asl.json
if command -v python3 >/dev/null && [ -d "$repo/statemachine/conformance/cases" ]; then
  python3 - "$repo/statemachine/conformance/cases" seeds/generated/asl_definition <<'PY'
import json, os, sys
source, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(source)):
    if name.endswith(".json"):
        with open(os.path.join(source, name)) as f:
            case = json.load(f)
        if isinstance(case, dict) and "definition" in case:
            with open(os.path.join(out, name), "w") as f:
                json.dump(case["definition"], f)
PY
fi

echo "building ${targets[*]} (sanitizer: $sanitizer)" >&2
for target in "${targets[@]}"; do
  nice -n 19 "${fuzz[@]}" build "${build_flags[@]}" "$target" >&2
done

status=0
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  dirs=("corpus/$target" $(seed_dirs "$target"))
  [ -d "seeds/generated/$target" ] && dirs+=("seeds/generated/$target")
  options=(-max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048)
  case "$target" in
    render) options+=(-timeout=20 -max_len=65536) ;;
    faces) options+=(-timeout=10 -max_len=90000) ;;
    probe) options+=(-timeout=5 -max_len=65536) ;;
    config|asl_definition) options+=(-timeout=5 -max_len=16384 -dict=dicts/json.dict) ;;
    event) options+=(-timeout=5 -max_len=8192 -dict=dicts/json.dict) ;;
    asl_paths) options+=(-timeout=5 -max_len=4096 -dict=dicts/asl.dict) ;;
    *) options+=(-timeout=5) ;;
  esac
  log="logs/$target.log"
  echo "fuzzing $target for ${seconds}s (log: fuzz/$log)" >&2
  if nice -n 19 "${fuzz[@]}" run "${build_flags[@]}" "$target" "${dirs[@]}" -- "${options[@]}" >"$log" 2>&1; then
    outcome="ok"
  else
    outcome="FAILED (see fuzz/$log and fuzz/artifacts/$target/)"
    status=1
  fi
  executions="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)"
  rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)"
  summary+=("$(printf '%-16s %14s executions %10s exec/s  %s' "$target" "${executions:-?}" "${rate:-?}" "$outcome")")
done

printf '\n%s\n' "fuzzed ${seconds}s per target:"
printf '%s\n' "${summary[@]}"
exit "$status"
