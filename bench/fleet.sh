#!/usr/bin/env bash
# The fleet benchmark, one command: livekit-server v1.13.5 with Redis dispatching room
# composites to two `tessera serve` nodes (fleet mode), every call through livekit-server's
# Egress API with LiveKit's Python SDK (bench/fleet_driver.py). Measures:
#   1. Start call -> ACTIVE (p50 / p95 over STARTS starts, one at a time): the psrpc bid and
#      grant, the node's start, the recorder's join and first frame, the IOInfo report
#   2. 2 nodes x ROOMS rooms (one synthetic publisher each) recorded at once for SECS s at
#      640x360 15 fps: each file's frames per second of its duration, the compositor's late
#      ticks and the slowest encoder's speed (real time: no late ticks, speed about 1), and
#      each node's CPU per recorded second
# Redis, livekit-server and the publishers run in their own processes, not measured.
# Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
STARTS=${STARTS:-20}
ROOMS=${ROOMS:-6}
SECS=${SECS:-20}
source bench/lib.sh
prepare fleet
lk=target/peers/livekit/server
py=target/peers-venv/bin/python
base=${BENCH_PORT:-7960}
redis_port=$base lk_port=$((base + 1)) a_port=$((base + 3)) b_port=$((base + 4))
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
redis-server --bind 127.0.0.1 --port $redis_port --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
livekit_yaml $lk_port "redis:
  address: 127.0.0.1:$redis_port
room:
  empty_timeout: 300" >"$work/livekit.yaml"
$lk --config "$work/livekit.yaml" >"$work/livekit.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$lk_port/" >/dev/null && break; sleep 0.2; done
node_pids=()
for n in a b; do
  port_var=${n}_port
  mkdir -p "$work/$n"
  cat >"$work/$n/tessera.yaml" <<YAML
api_key: $key
api_secret: $secret
ws_url: ws://127.0.0.1:$lk_port
listen: 127.0.0.1:${!port_var}
output_dir: $work/$n/rec
renderer: cpu
log_level: ${NODE_LOG:-warn}
redis:
  address: 127.0.0.1:$redis_port
YAML
  TESSERA_LOG=${NODE_LOG:-warn} $bin serve --config "$work/$n/tessera.yaml" >"$work/$n/serve.out" 2>"$work/$n/serve.log" &
  pids+=($!) node_pids+=($!)
done
for r in bench $(seq -f "room%g" 1 "$ROOMS"); do
  $bin devroom --publish-to "ws://127.0.0.1:$lk_port" --api-key $key --api-secret "$secret" --synthetic 1 --room "$r" >"$work/pub-$r.log" 2>&1 &
  pids+=($!)
done
sleep 4 # the rooms exist and have video
export LIVEKIT_URL="http://127.0.0.1:$lk_port" LIVEKIT_API_KEY=$key LIVEKIT_API_SECRET=$secret

starts=$($py bench/fleet_driver.py starts "$STARTS")
read -r s_p50 s_p95 s_max < <(echo "$starts" | python3 -c '
import json, sys
v = sorted(json.load(sys.stdin)["start_to_active_ms"])
q = lambda p: v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
print(f"{q(0.5):.0f} {q(0.95):.0f} {v[-1]:.0f}")')

cpu0=() ; for p in "${node_pids[@]}"; do cpu0+=("$(cpu_of "$p")"); done
rooms=$(NODE_METRICS="http://127.0.0.1:$a_port/metrics,http://127.0.0.1:$b_port/metrics" $py bench/fleet_driver.py rooms "$ROOMS" "$SECS")
read -r late slowest < <(echo "$rooms" | python3 -c 'import json, sys; r = json.load(sys.stdin); s = r.get("slowest"); print(r.get("late"), "—" if s is None else f"{s:.3f}")')
cpu1=() ; for p in "${node_pids[@]}"; do cpu1+=("$(cpu_of "$p")"); done
rows=""
worst=15
for n in a b; do
  for f in "$work/$n"/rec/room*.mp4; do
    [ -f "$f" ] || continue
    read -r frames dur < <(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets:format=duration -of default=nw=1:nk=1 "$f" | paste -sd' ')
    fps=$(awk -v f="$frames" -v d="$dur" 'BEGIN { printf "%.2f", f / d }')
    worst=$(awk -v a="$worst" -v b="$fps" 'BEGIN { print (b < a) ? b : a }')
    rows+="$n:$(basename "$f" .mp4)=${fps} "
  done
done
per_node() { awk -v a="$1" -v b="$2" -v r="$3" -v s="$SECS" 'BEGIN { if (r == 0) print "—"; else printf "%.3f", (b - a) / (r * s) }'; }
count_a=$(ls "$work"/a/rec/room*.mp4 2>/dev/null | wc -l) count_b=$(ls "$work"/b/rec/room*.mp4 2>/dev/null | wc -l)
mesa=$(dpkg-query -W -f '${Version}' mesa-vulkan-drivers 2>/dev/null || echo "unknown")
cat <<MD
### $(date -u +%Y-%m-%d) — fleet mode, livekit-server v1.13.5 + Redis + 2 Tessera nodes, $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo | cut -c1-40), Mesa ${mesa}
Every call through livekit-server's Egress API (LiveKit's Python SDK, one process); 640x360 15 fps grid recordings.

| what | figure |
|---|---|
| Start call → ACTIVE in ListEgress, $STARTS starts one at a time | p50 ${s_p50} ms, p95 ${s_p95} ms, max ${s_max} ms |
| $ROOMS rooms at once over 2 nodes | A ran ${count_a}, B ran ${count_b} |
| worst recording's frame rate (15 = real time) | ${worst} fps |
| late ticks, all recordings, just before the stop | ${late} |
| slowest encoder (frames encoded per frame of wall time; 1 = real time) | ${slowest} |
| node A CPU-s per recorded s, per recording | $(per_node "${cpu0[0]}" "${cpu1[0]}" "$count_a") |
| node B CPU-s per recorded s, per recording | $(per_node "${cpu0[1]}" "${cpu1[1]}" "$count_b") |

Per recording: ${rows}
MD
