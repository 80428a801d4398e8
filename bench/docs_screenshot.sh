#!/usr/bin/env bash
# A headless browser's view of `enctune serve`'s /docs with no network: the server and the browser run in a
# network namespace that holds only the loopback interface, so a page that needed a CDN would stay blank.
#   sudo bash bench/docs_screenshot.sh RUN_FOLDER [OUT.png]     (needs chromium and util-linux's unshare)
set -euo pipefail
run=${1:?a run folder to serve}
out=${2:-bench/results/serve/docs-offline.png}
enctune=${ENCTUNE:-.venv/bin/enctune}
unshare -n bash -s "$run" "$out" "$enctune" <<'INNER'
set -euo pipefail
ip link set lo up
HF_HUB_OFFLINE=1 "$3" serve "$1" --port 8123 > /dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 120); do curl -fs localhost:8123/ready > /dev/null && break; sleep 1; done
echo "CDN reachable: $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 https://cdn.jsdelivr.net/ || true) (000: no)"
echo "/docs: $(curl -s -o /dev/null -w '%{http_code}' localhost:8123/docs)"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1000 \
    --virtual-time-budget=8000 --screenshot="$2" http://127.0.0.1:8123/docs 2> /dev/null
echo "wrote $2"
INNER
