#!/usr/bin/env bash
# Render a pytest-html report of examples/user_project's findings (pictures and
# trace tables attached to the failing items) and take a screenshot of it in
# headless Chromium, for a person to look at.
#
#   bash scripts/html_report_screenshot.sh [OUTDIR]      (default: convcheck-html)
#
# Needs: pytest-html and matplotlib (pip install -e '.[html]'), and Chromium
# (Debian: apt-get install chromium). Writes OUTDIR/report.html (self-contained),
# OUTDIR/report.png (the top of the page, failures expanded) and
# OUTDIR/pictures/*.png (the same pictures, via --convcheck-artifacts).
# PYTHON picks the interpreter (default: .venv/bin/python, else python3).
# Exits non-zero when the report or the screenshot could not be made; the
# example project's own failures (its planted bugs) are expected.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=$(realpath -m "${1:-convcheck-html}")
python=${PYTHON:-}
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=$repo/.venv/bin/python; else python=python3; fi
fi
"$python" -c "import pytest_html, matplotlib" 2>/dev/null || {
    echo "needs pytest-html and matplotlib: pip install -e '.[html]'" >&2
    exit 2
}
browser=""
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null; then browser=$(command -v "$name"); break; fi
done
[[ -n "$browser" ]] || { echo "needs Chromium: apt-get install chromium" >&2; exit 2; }

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r examples/user_project "$work/project"
rm -rf "$work/project/__snapshots__"  # a first run: snapshots skipped, not compared
(
    cd "$work/project"
    "$python" -m pytest --convcheck -p no:cacheprovider -q \
        --html="$out/report.html" --self-contained-html \
        --convcheck-artifacts="$out/pictures" >"$out/pytest.log" 2>&1 || true
)
[[ -s "$out/report.html" ]] || { echo "no report written; see $out/pytest.log" >&2; exit 1; }
grep -q "data:image/png;base64" "$out/report.html" || {
    echo "the report holds no picture; see $out/pytest.log" >&2
    exit 1
}
# --virtual-time-budget lets the report's script render the rows before the shot
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1400,3000 --virtual-time-budget=10000 \
    --screenshot="$out/report.png" "file://$out/report.html" >"$out/chromium.log" 2>&1 || {
    echo "chromium failed; see $out/chromium.log" >&2
    exit 1
}
[[ -s "$out/report.png" ]] || { echo "no screenshot; see $out/chromium.log" >&2; exit 1; }
echo "report:     $out/report.html"
echo "screenshot: $out/report.png"
echo "pictures:   $out/pictures/"
tail -n 3 "$out/pytest.log"
