#!/usr/bin/env bash
# RTMP glass-to-ingest latency, one command. devroom's synthetic participant flashes
# on the wall clock (every 5 s of Unix time); `tessera serve` records the room
# (720p30 single tile, x264 veryfast zerolatency) and pushes RTMP to an FFmpeg
# listener that decodes each frame as it lands and notes when a flash arrives
# (bench/flash_latency.py). Tessera runs twice: with its default delays, and with
# audio mixed 40 ms behind real time instead of 200 ms (`latency.audio_mixer_latency`),
# since the FLV muxer holds each video packet until audio as late has been written.
# The floor is the encoder's own latency: plain FFmpeg encoding raw frames that flash
# on the same marks, with the same settings, to the same kind of listener.
# Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-60}
source bench/lib.sh
prepare latency
base_port=${BENCH_PORT:-7966}
participants=1 devroom_flags=--wall-clock-marks
devroom_pid="" serve_pid="" src=""
trap 'kill $devroom_pid $serve_pid $src 2>/dev/null || true' EXIT

# One Tessera run with `serve_yaml`; writes $work/$1.json.
tessera_run() {
  local name=$1 recv id
  room_port=$base_port api_port=$((base_port + 1))
  local rtmp="rtmp://127.0.0.1:$((base_port + 2))/live/lat"
  start_room_and_serve
  sleep 3
  # The listener must be up before the egress connects.
  python3 bench/flash_latency.py receive "$rtmp" "$SECS" >"$work/$name.json" &
  recv=$!
  sleep 1
  id=$(sdk startRoomComposite "{\"roomName\":\"bench\",\"layout\":\"grid\",\"outputs\":{\"stream\":{\"urls\":[\"$rtmp\"]}}}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"]["egressId"])')
  wait $recv
  sdk stopEgress "{\"egressId\":\"$id\"}" >/dev/null || true
  kill $devroom_pid $serve_pid 2>/dev/null || true
  wait $devroom_pid $serve_pid 2>/dev/null || true
  base_port=$((base_port + 3))
}
serve_yaml="" tessera_run tessera
serve_yaml=$'latency:\n  audio_mixer_latency: 40ms' tessera_run tessera40

# The floor: plain FFmpeg, same encoder settings, same listener.
floor="rtmp://127.0.0.1:$base_port/live/lat"
python3 bench/flash_latency.py receive "$floor" "$SECS" >"$work/floor.json" &
recv=$!
sleep 1
python3 bench/flash_latency.py source "$floor" "$((SECS + 5))" &
src=$!
wait $recv
kill $src 2>/dev/null || true

get() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/$1.json" "$2"; }
above() { awk -v a="$(get "$1" p50_ms)" -v b="$(get floor p50_ms)" 'BEGIN { printf "%.0f", a - b }'; }
row() { echo "| $2 | $(get "$1" flashes) | $(get "$1" p50_ms) ms | $(get "$1" p95_ms) ms | $(above "$1") ms |"; }
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
cat <<MD
### $(date -u +%Y-%m-%d) — RTMP latency, $(nproc) cores, ${cpu_model}, FFmpeg $(ffmpeg -version | awk 'NR==1{print $3}')
Glass-to-ingest: from the instant a frame is due at the publisher to its arrival, decoded, at an FFmpeg RTMP
listener on loopback; ${SECS} s each, one flash every 5 s.

| path | flashes | p50 | p95 | p50 above the floor |
|---|---|---|---|---|
$(row tessera "synthetic participant → VP8 → devroom (WebRTC) → \`tessera serve\` (decode, 50 ms hold, composite, x264) → RTMP; defaults")
$(row tessera40 "the same with \`latency.audio_mixer_latency: 40ms\` (audio mixed 40 ms behind real time, not 200)")
| floor: raw frames → FFmpeg x264 (same settings) → RTMP | $(get floor flashes) | $(get floor p50_ms) ms | $(get floor p95_ms) ms | — |

Target: under 500 ms above the encoder's own.
MD
