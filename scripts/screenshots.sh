#!/usr/bin/env bash
# Screenshots of kvlab reports in headless Chromium: a valid run, an invalid run (kvnode with
# --unsafe-read-local under partitions) and the runs index.
#
#   scripts/screenshots.sh [OUT_DIR]        (default: target/screenshots)
#
# For each report it writes NAME-screen.png (1280x900: what a reader sees without scrolling),
# NAME-page.png (the whole page, however long) and NAME-open.png (the whole page with every
# folded part opened: the other invalid keys, the node logs). Installs Debian's chromium when it
# is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/screenshots}
mkdir -p "$out"
out=$(realpath "$out")

if ! command -v chromium >/dev/null; then
    echo "screenshots: installing Debian's chromium" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

cargo build --release --bin bench --bin kvnode
bench=target/release/bench
runs=$out/runs
rm -rf "$runs"

set +e
$bench run --out "$runs" --test valid-run --time-limit 30s --seed 1 --nemesis mix
valid=$?
$bench run --out "$runs" --test invalid-run --time-limit 30s --seed 1 --nemesis partition \
    --node-arg=--unsafe-read-local
invalid=$?
set -e
[ "$valid" -eq 0 ] || { echo "screenshots: the valid run exited $valid" >&2; exit 1; }
[ "$invalid" -eq 1 ] || { echo "screenshots: the invalid run exited $invalid" >&2; exit 1; }

profile=$(mktemp -d)
copies=$(mktemp -d) # the pages as measured and as opened: self-contained, they render anywhere
trap 'rm -rf "$profile" "$copies"' EXIT
chrome() {
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars "$@" 2>/dev/null
}
# The page's height at 1280 pixels wide: a copy of it, with a script that writes the height
# into the page once loaded, read back with --dump-dom.
height() { # page.html
    local copy
    copy="$copies/height-$(basename "$(dirname "$1")")-$(basename "$1")"
    { cat "$1"; echo '<script>addEventListener("load", () => { const p = document.createElement("pre"); p.textContent = "page-height=" + document.documentElement.scrollHeight; document.body.appendChild(p); })</script>'; } >"$copy"
    chrome --window-size=1280,900 --dump-dom "file://$copy" | grep -o 'page-height=[0-9]*' | tail -1 | cut -d= -f2
}
shot() { # page.html out.png height
    chrome --window-size="1280,$3" --screenshot="$2" "file://$1"
}
for name in valid-run invalid-run; do
    page=$(ls -d "$runs/$name"/*/report.html | head -1)
    shot "$page" "$out/$name-screen.png" 900
    shot "$page" "$out/$name-page.png" "$(height "$page")"
    open="$copies/$name-open.html"
    sed 's/<details\b/<details open/g' "$page" >"$open"
    shot "$open" "$out/$name-open.png" "$(height "$open")"
done
shot "$runs/index.html" "$out/index.png" 500
ls -1 "$out"/*.png
