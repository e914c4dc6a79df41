#!/usr/bin/env bash
# Runs the fuzz targets of the domain crate (crates/domain/fuzz, cargo-fuzz on
# the nightly toolchain) for SECONDS each, one after the other, each as one
# libFuzzer process on one core, and prints the executions of each target.
#
#   scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags…]
#
# Targets: scan, chunk, values, workbook (see docs/fuzzing.md). The corpus of
# each grows in crates/domain/fuzz/corpus/TARGET (seeded from samples/ when
# empty); crashes land in crates/domain/fuzz/artifacts/TARGET. Builds in
# $CARGO_TARGET_DIR when set, else crates/domain/fuzz/target. Not part of CI.
set -euo pipefail

TARGETS=(scan chunk values workbook)
usage() {
    echo "usage: $0 TARGET|all SECONDS [libFuzzer flags...]  (targets: ${TARGETS[*]})" >&2
    exit 2
}
[[ $# -ge 2 ]] || usage
which_target=$1
seconds=$2
shift 2
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || usage
if [[ $which_target == all ]]; then
    run=("${TARGETS[@]}")
elif [[ " ${TARGETS[*]} " == *" $which_target "* ]]; then
    run=("$which_target")
else
    usage
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: the nightly toolchain is needed (cargo-fuzz builds with its -Z instrumentation flags);" >&2
    echo "       install it with: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

# The code is safe Rust (unsafe is denied in the workspace), so by default
# the targets build without AddressSanitizer, several times faster; panics,
# timeouts and memory beyond -rss_limit_mb are caught either way.
# FUZZ_SANITIZER=address brings it back.
sanitizer=${FUZZ_SANITIZER:-none}

fuzz_dir="$(cd "$(dirname "$0")/.." && pwd)/crates/domain/fuzz"
cd "$fuzz_dir"

# Largest input per target: a cell holds up to 10,000 characters; files and
# workbooks are explored up to 64 KiB.
max_len() {
    case $1 in
        values) echo 10240 ;;
        *) echo 65536 ;;
    esac
}

if [[ -z "$(ls -A corpus/"${run[0]}" 2>/dev/null)" ]]; then
    echo "seeding the corpora from samples/" >&2
    cargo +nightly run --quiet --example seeds
fi
cargo +nightly fuzz build -O --sanitizer "$sanitizer"

declare -A executions
status=0
for target in "${run[@]}"; do
    logs="$fuzz_dir/logs/$target"
    mkdir -p "$logs" "corpus/$target" "artifacts/$target"
    echo "== $target: ${seconds}s, max_len $(max_len "$target")" >&2
    # -jobs=1 -workers=1: one fuzzing process on one core, its output in fuzz-0.log.
    if ! (cd "$logs" && cargo +nightly fuzz run -O --sanitizer "$sanitizer" --fuzz-dir "$fuzz_dir" "$target" \
        "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
        -rss_limit_mb=2048 -jobs=1 -workers=1 -print_final_stats=1 "$@" >run.log 2>&1); then
        status=1
    fi
    log="$logs/fuzz-0.log"
    [[ -f $log ]] || log="$logs/run.log"
    count=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
    if grep -qE '==[0-9]+== ?ERROR|panicked at|Test unit written to' "$log"; then
        status=1
        echo "!! $target found a failure; see $log and artifacts/$target" >&2
        grep -E 'panicked at|ERROR|Test unit written to' "$log" | head -n 5 >&2
    fi
    executions[$target]=${count:-0}
done

total=0
echo "target      executions"
for target in "${run[@]}"; do
    printf '%-11s %s\n' "$target" "${executions[$target]}"
    total=$((total + executions[$target]))
done
printf '%-11s %s\n' total "$total"
exit $status
