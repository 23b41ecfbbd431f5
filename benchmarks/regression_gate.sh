#!/usr/bin/env bash
# The benchmark suite's regression gate, made robust to a noisy (shared) machine.
#
#   1. Run the whole suite, save it, and compare it with the newest run saved
#      before it in STORAGE (the baseline).
#   2. Re-run only the benchmarks whose mean was more than 10 % slower, each time in
#      a fresh process, twice: the ones still slower after the first re-run are run
#      again against the same baseline with --benchmark-compare-fail=mean:10%, and
#      that run's verdict is the gate's. A real regression is slow every time; a
#      burst of contention from a neighbour on a shared machine, or a process that
#      drew a slow memory layout, is not.
#
# usage (from the repository root): bash benchmarks/regression_gate.sh [STORAGE] [PYTEST ARGS...]
#   STORAGE defaults to .benchmarks/cpu; save a baseline first with
#   pytest benchmarks --benchmark-disable-gc --benchmark-storage=.benchmarks/cpu --benchmark-autosave
# Exit status: 0 no regression, 1 a regression confirmed, 2 no baseline or runs
# that cannot be compared; otherwise pytest's own.
set -uo pipefail

storage=${1:-.benchmarks/cpu}
shift || true
opts=(-p no:cacheprovider --benchmark-disable-gc "--benchmark-storage=$storage")
newest() { find "$storage" -name '*.json' -printf '%f\t%p\n' 2>/dev/null | sort | tail -1 | cut -f2; }

baseline=$(newest)
if [[ -z $baseline ]]; then
    echo "regression_gate: no saved run in $storage; save a baseline first:" >&2
    echo "  pytest benchmarks ${opts[*]} --benchmark-autosave" >&2
    exit 2
fi
echo "baseline: $baseline"

pytest benchmarks "${opts[@]}" --benchmark-autosave "$@" || exit $?
current=$(newest)

regressed=$(convcheck-bench-compare "$baseline" "$current" --regressed)
status=$?
if [[ $status -eq 2 ]]; then
    exit 2
fi
if [[ -z $regressed ]]; then
    echo "regression_gate: no benchmark is more than 10 % slower than $baseline"
    exit 0
fi
mapfile -t ids <<< "$regressed"
echo "regression_gate: ${#ids[@]} benchmark(s) more than 10 % slower; re-running them:"
printf '  %s\n' "${ids[@]}"
rerun=$(mktemp --suffix=.json)
trap 'rm -f "$rerun"' EXIT
pytest "${ids[@]}" "${opts[@]}" "--benchmark-json=$rerun" "$@" || exit $?
regressed=$(convcheck-bench-compare "$baseline" "$rerun" --regressed)
if [[ -z $regressed ]]; then
    echo "regression_gate: none of them is slower on a second run: noise, no regression"
    exit 0
fi
mapfile -t ids <<< "$regressed"
echo "regression_gate: ${#ids[@]} still slower; a third run decides (mean:10%):"
printf '  %s\n' "${ids[@]}"
run_id=$(basename "$baseline" | cut -d_ -f1)
pytest "${ids[@]}" "${opts[@]}" "--benchmark-compare=$run_id" \
    --benchmark-compare-fail=mean:10% "$@"
status=$?
if [[ $status -eq 0 ]]; then
    echo "regression_gate: not slower on the third run: noise, no regression"
fi
exit $status
