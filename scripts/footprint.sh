#!/usr/bin/env bash
# Footprint of one node (issue 14): start-up time (spawn → ready line), RSS once idle, and RSS
# under a modest MQTT QoS 1 + Kafka load. Prints one line per phase.
#
#   scripts/footprint.sh                      # this checkout's dist/, the node on PATH, npm start's flags
#   NODE_FLAGS= scripts/footprint.sh          # node without flags (to weigh them)
#   LOAD_SECONDS=20 MQTT_CLIENTS=50 scripts/footprint.sh
#
# The load: MQTT_CLIENTS mosquitto_pub processes each publishing QoS 1 messages in a loop
# (-l from a generator, one ~60-byte JSON reading per 10 ms each) to sensors/<n>/temp, one
# mosquitto_sub on sensors/#, and kcat producing lz4 batches to `readings` and consuming them,
# for LOAD_SECONDS; RSS is sampled every 0.5 s and the peak reported. Needs mosquitto_pub/sub
# and kcat. RSS is VmRSS (anon = the process's own memory; file = mapped code such as the node
# binary, shared and reclaimable).
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODE=${NODE:-node}
# 25 s: the idle heap trim (node.idleHeapTrimIntervalMs, after 2 × 10 s quiet) has run by then
IDLE_SECONDS=${IDLE_SECONDS:-25}
LOAD_SECONDS=${LOAD_SECONDS:-20}
MQTT_CLIENTS=${MQTT_CLIENTS:-20}
# The node flags `npm start` uses (package.json scripts.start), unless NODE_FLAGS is set.
NODE_FLAGS=${NODE_FLAGS-$(sed -n 's/^ *"start": "node \(.*\) dist\/host\/main.js start",$/\1/p' "$ROOT/package.json")}
work=$(mktemp -d /tmp/tributary-footprint-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
rss() { awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "%.1f MiB (anon %.1f, file %.1f)", r/1024, a/1024, f/1024}' /proc/$1/status; }
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/$1/status 2>/dev/null || echo 0; }

t0=$(date +%s%3N)
$NODE $NODE_FLAGS "$ROOT/dist/host/main.js" start --data-dir "$work/data" --host 127.0.0.1 --kafka-port 0 --mqtt-port 0 \
  --mqtt-ws-port 0 --http-port 0 --set schemas.port=0 >"$work/log" 2>&1 &
pid=$!
until grep -q '"msg":"ready' "$work/log"; do
  kill -0 $pid 2>/dev/null || { echo "broker exited: $(tail -c 800 "$work/log")"; exit 1; }
  sleep 0.05
done
t_ready=$(( $(date +%s%3N) - t0 ))
ready=$(grep -m1 '"msg":"ready' "$work/log")
startup=$(grep -o '"startupMs":[0-9]*' <<<"$ready" | cut -d: -f2)
kafka=$(grep -o '"kafka":"[^"]*"' <<<"$ready" | cut -d'"' -f4)
mqtt_port=$(grep -o '"mqtt":"[^"]*"' <<<"$ready" | cut -d'"' -f4 | cut -d: -f2)
echo "node $($NODE --version) ${NODE_FLAGS} ${NODE_OPTIONS:-}"
echo "start: spawn → ready line ${t_ready} ms (startupMs in the ready line: ${startup})"
echo "at ready: $(rss $pid)"
sleep "$IDLE_SECONDS"
http=$(grep -o '"http":"[^"]*"' <<<"$ready" | cut -d'"' -f4)
heap=$(curl -fsS "http://$http/metrics" 2>/dev/null | awk '/^nodejs_heap_size_(used|total)_bytes / {printf "%s %.1f MiB, ", substr($1, 18, length($1) - 23), $2 / 1048576} /^tributary_heap_trims_total / {printf "idle heap trims %d", $2}')
echo "idle ${IDLE_SECONDS} s: $(rss $pid); V8 heap ${heap}"

mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t 'sensors/#' >/dev/null 2>&1 &
for n in $(seq 1 "$MQTT_CLIENTS"); do
  ( while :; do printf '{"sensor":"s-%d","t":21.5,"rh":40,"ts":%s}\n' "$n" "$(date +%s%3N)"; sleep 0.01; done ) |
    mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t "sensors/$n/temp" -l >/dev/null 2>&1 &
done
( while :; do seq 1 500 | sed 's/^/key-&:{"reading":&,"unit":"C"}/'; sleep 0.1; done ) |
  kcat -b "$kafka" -P -t readings -K: -z lz4 >/dev/null 2>&1 &
kcat -b "$kafka" -C -t readings -o beginning >/dev/null 2>&1 &
peak=0
end=$(( $(date +%s) + LOAD_SECONDS ))
while [ "$(date +%s)" -lt "$end" ]; do
  r=$(rss_kib $pid); [ "$r" -gt "$peak" ] && peak=$r
  sleep 0.5
done
echo "load ${LOAD_SECONDS} s (${MQTT_CLIENTS} MQTT QoS 1 publishers at ~100 msg/s each, 1 subscriber, kcat ~5,000 records/s in and out): peak RSS $((peak / 1024)) MiB, now $(rss $pid)"
kill $(jobs -p | grep -v "^$pid$") 2>/dev/null
sleep 2
curl -fsS "http://$http/metrics" 2>/dev/null |
  awk '/^tributary_broker_records_in_total\{topic="(sensors|readings)"/ {split($1, a, "\""); printf "records appended to %s: %d\n", a[2], $2}'
kill -TERM $pid; wait $pid
echo "stopped: exit $?"
