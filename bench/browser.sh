#!/usr/bin/env bash
# The headline comparison, one command: the same room (devroom, 4 synthetic participants)
# recorded for SECS seconds (60) at 720p30 through Tessera's native path and through its
# Chromium path (the test template in fixtures/template, built on livekit-client, in
# Debian's Chromium on Xvfb with PulseAudio, captured by FFmpeg's x11grab and pulse into the
# same x264 encoder), one after the other in one run. For each: CPU-seconds per recorded
# second of `tessera serve` and every process under it (Chromium, Xvfb, PulseAudio),
# peak memory of that tree (PSS, and RSS), and start-up (the Start call to the first
# frame encoded). Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-60}
source bench/lib.sh
prepare browser
mkdir -p "$work/site"
room_port=${BENCH_PORT:-7946}
api_port=$((room_port + 1)) site_port=$((room_port + 2))
participants=4
serve_yaml=$'cpu_cost:\n  cpus: 8'
# The template and livekit-client, served as a template host would.
ln -s "$PWD/fixtures/template" "$work/site/template"
ln -s "$PWD/target/peers-node/node_modules/livekit-client/dist/livekit-client.umd.js" "$work/site/livekit-client.umd.js"
python3 -m http.server "$site_port" --bind 127.0.0.1 --directory "$work/site" >"$work/site.log" 2>&1 &
site_pid=$!
start_room_and_serve
trap 'kill $devroom_pid $serve_pid $site_pid 2>/dev/null || true' EXIT
sleep 4

# One recording; prints "cpu_per_s pss_mib rss_mib startup_ms".
measure() {
  local args=$1 id t0 t1 c0 c1 mem
  # From the egress's creation (its first updatedAt, ns) to its first frame (the file's startedAt).
  read -r id t0 < <(sdk startRoomComposite "$args" | python3 -c 'import json,sys; i=json.load(sys.stdin)["ok"]; print(i["egressId"], int(i["updatedAt"]) // 1000000)')
  until sdk listEgress "{\"egressId\":\"$id\"}" | grep -q EGRESS_ACTIVE; do sleep 0.05; done
  # The first frame's time as the egress reports it (the file's startedAt, ns), not when polling saw it.
  t1=$(sdk listEgress "{\"egressId\":\"$id\"}" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["ok"][0]["fileResults"][0]["startedAt"]) // 1000000)')
  sleep 3 # past the start
  c0=$(python3 bench/proctree.py cpu $serve_pid)
  mem=$(python3 bench/proctree.py watch $serve_pid "$SECS")
  c1=$(python3 bench/proctree.py cpu $serve_pid)
  sdk stopEgress "{\"egressId\":\"$id\"}" >/dev/null
  until sdk listEgress "{\"egressId\":\"$id\"}" | grep -q EGRESS_COMPLETE; do sleep 0.2; done
  awk -v a="$c0" -v b="$c1" -v s="$SECS" -v m="$mem" -v st=$((t1 - t0)) 'BEGIN { printf "%.3f %s %d\n", (b - a) / s, m, st }'
}
file() { echo "{\"filepath\":\"$1.mp4\"}"; }
native=$(measure "{\"roomName\":\"bench\",\"layout\":\"grid\",\"file\":$(file native)}")
sleep 2
browser=$(measure "{\"roomName\":\"bench\",\"customBaseUrl\":\"http://127.0.0.1:$site_port/template/index.html\",\"file\":$(file chromium)}")
read -r n_cpu n_pss n_rss n_start <<<"$native"
read -r b_cpu b_pss b_rss b_start <<<"$browser"
ratio=$(awk -v a="$b_cpu" -v b="$n_cpu" 'BEGIN { printf "%.1f", a / b }')
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
cat <<MD
### $(date -u +%Y-%m-%d) — native against Chromium, $(nproc) cores, ${cpu_model}, $(chromium --version 2>/dev/null | head -1), FFmpeg $(ffmpeg -version | awk 'NR==1{print $3}')
\`bench/browser.sh\`: devroom's 4 synthetic participants (VP8 640x360 15 fps + Opus) recorded at 720p30 for ${SECS} s,
x264 veryfast zerolatency 3000 kbps, one path after the other in one \`tessera serve\`. CPU and memory are
of \`tessera serve\` and every process under it.

| path | CPU-s per recorded s | peak memory PSS (RSS) | start: egress created to first frame encoded |
|---|---|---|---|
| native: hidden subscriber, CPU compositor | ${n_cpu} | ${n_pss} MiB (${n_rss} MiB) | ${n_start} ms |
| Chromium: test template (livekit-client), Xvfb, PulseAudio, x11grab + pulse capture | ${b_cpu} | ${b_pss} MiB (${b_rss} MiB) | ${b_start} ms |

The Chromium path costs **${ratio}x** the native path's CPU.
MD
