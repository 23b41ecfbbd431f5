#!/usr/bin/env bash
# The benchmark suite's regression gate, for machines whose speed drifts (shared VMs).
#
#   1. Run the whole suite, save it (--benchmark-autosave) and compare it with the
#      newest run saved before it in STORAGE (the baseline): a benchmark whose mean
#      is more than 10 % slower is flagged, as --benchmark-compare-fail=mean:10%
#      would flag it.
#   2. The flagged benchmarks are measured again, A/B interleaved: the baseline's
#      commit (checked out in a temporary git worktree) and this tree take turns,
#      CONVCHECK_GATE_ROUNDS times each (default 3), every run in a fresh process.
#      The means averaged per side decide, at 10 % (CONVCHECK_GATE_THRESHOLD, in
#      per cent, sets both thresholds). A slow spell of the machine
#      (neighbours on a shared cache) then hits both sides alike; a real
#      regression stays.
#
# usage (from the repository root): bash benchmarks/regression_gate.sh [STORAGE] [PYTEST ARGS...]
#   STORAGE defaults to .benchmarks/cpu; save a baseline first, on main, with
#   pytest benchmarks --benchmark-disable-gc --benchmark-storage=.benchmarks/cpu --benchmark-autosave
# The baseline side imports this repository's packages from the worktree
# (PYTHONPATH=worktree:worktree/src), so both sides run their own code.
# Exit status: 0 no regression, 1 a regression confirmed, 2 no baseline, runs that
# cannot be compared, or a baseline commit that is not in this repository;
# otherwise pytest's own.
set -uo pipefail

storage=${1:-.benchmarks/cpu}
shift || true
rounds=${CONVCHECK_GATE_ROUNDS:-3}
threshold=${CONVCHECK_GATE_THRESHOLD:-10}
opts=(-p no:cacheprovider --benchmark-disable-gc)
newest() { find "$storage" -name '*.json' -printf '%f\t%p\n' 2>/dev/null | sort | tail -1 | cut -f2; }

baseline=$(newest)
if [[ -z $baseline ]]; then
    echo "regression_gate: no saved run in $storage; save a baseline first:" >&2
    echo "  pytest benchmarks ${opts[*]} --benchmark-storage=$storage --benchmark-autosave" >&2
    exit 2
fi
commit=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["commit_info"].get("id") or "")' "$baseline")
echo "baseline: $baseline (commit ${commit:-unknown})"

pytest benchmarks "${opts[@]}" "--benchmark-storage=$storage" --benchmark-autosave "$@" || exit $?
current=$(newest)

regressed=$(convcheck-bench-compare "$baseline" "$current" --regressed --threshold "$threshold")
if [[ $? -eq 2 ]]; then
    exit 2
fi
if [[ -z $regressed ]]; then
    echo "regression_gate: no benchmark is more than $threshold % slower than $baseline"
    exit 0
fi
mapfile -t ids <<< "$regressed"
echo "regression_gate: ${#ids[@]} benchmark(s) more than $threshold % slower:"
printf '  %s\n' "${ids[@]}"

if [[ -z $commit ]] || ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "regression_gate: the baseline's commit (${commit:-none recorded}) is not in this" \
        "repository, so it cannot be measured again; the flags above stand unconfirmed." >&2
    exit 2
fi
if [[ $baseline == *uncommitted-changes* ]]; then
    echo "regression_gate: warning: the baseline was saved with uncommitted changes;" \
        "the A/B runs use its commit $commit without them." >&2
fi
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1; rm -rf "$work"' EXIT
git worktree add --quiet --detach "$work/base" "$commit" || exit 2

echo "regression_gate: A/B, interleaved, $rounds run(s) per side of commit ${commit:0:8} and this tree"
base_runs=()
new_runs=()
for ((i = 1; i <= rounds; i++)); do
    (
        cd "$work/base" &&
            PYTHONPATH="$work/base:$work/base/src${PYTHONPATH:+:$PYTHONPATH}" \
                pytest "${ids[@]}" "${opts[@]}" "--benchmark-json=$work/base-$i.json" "$@" >/dev/null
    ) || {
        echo "regression_gate: the baseline's benchmarks failed at $commit" >&2
        exit 2
    }
    pytest "${ids[@]}" "${opts[@]}" "--benchmark-json=$work/new-$i.json" "$@" >/dev/null || exit $?
    base_runs+=("$work/base-$i.json")
    new_runs+=("$work/new-$i.json")
done
convcheck-bench-compare --base "${base_runs[@]}" --new "${new_runs[@]}" --threshold "$threshold"
