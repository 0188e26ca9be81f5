#!/usr/bin/env bash
# Starts one coordinator and N workers on this machine against an existing
# PostgreSQL and object store, in the foreground; Ctrl-C (or SIGTERM) stops them
# all, workers first. The same layout runs under any process manager: one
# `jagged coordinator`, any number of `jagged worker`, all configured by env.
#
#   DATABASE_URL=postgres://... JAGGED_STORE=/shared/store deploy/local-up.sh 4
#
# Env: DATABASE_URL (required), JAGGED_STORE (default ./jagged-store),
# JAGGED_LISTEN (default 127.0.0.1:7070), JAGGED_THREADS (per worker, default
# cores / N), JAGGED_BIN (default target/release/jagged), ORT_DYLIB_PATH.
set -euo pipefail
n=${1:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${JAGGED_BIN:-$root/target/release/jagged}
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL URL}"
export JAGGED_STORE=${JAGGED_STORE:-$PWD/jagged-store}
export JAGGED_LISTEN=${JAGGED_LISTEN:-127.0.0.1:7070}
export JAGGED_COORDINATOR=${JAGGED_COORDINATOR:-http://$JAGGED_LISTEN}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$root/.cache/jagged/ort/libonnxruntime.so}
cores=$(nproc)
export JAGGED_THREADS=${JAGGED_THREADS:-$(( cores / n > 0 ? cores / n : 1 ))}
[ -x "$bin" ] || { echo "$bin not found: cargo build --release -p jagged-cli" >&2; exit 1; }

pids=()
stop() {
  trap - INT TERM EXIT
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait || true
}
trap stop INT TERM EXIT

"$bin" coordinator &
pids+=($!)
for ((i = 0; i < n; i++)); do
  "$bin" worker --name "worker-$i" &
  pids+=($!)
done
echo "coordinator on $JAGGED_COORDINATOR, $n worker(s) with $JAGGED_THREADS thread(s) each; store $JAGGED_STORE" >&2
wait -n || true
