#!/usr/bin/env bash
# HLS over a long run (30 minutes unless SECS says otherwise), one command: `tessera serve`
# records devroom's synthetic participants (720p30 grid) to 6 s HLS segments while
# bench/hls_drift.py follows the playlist; then every segment is probed. Prints a Markdown
# block for bench/RESULTS.md: program-date-time against the media time inside the segments,
# and the wall time each segment appeared against its program-date-time, first minutes
# against last (drift would make that lag grow or shrink).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-1800}
source bench/lib.sh
prepare hls-drift
room_port=${BENCH_PORT:-7956}
api_port=$((room_port + 1))
participants=${PARTICIPANTS:-2}
start_room_and_serve
trap 'kill $devroom_pid $serve_pid 2>/dev/null || true' EXIT
sleep 3

id=$(sdk startRoomComposite '{"roomName":"bench","layout":"grid","outputs":{"segments":{"filenamePrefix":"drift/seg","playlistName":"drift.m3u8","segmentDuration":6}}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"]["egressId"])')
python3 bench/hls_drift.py watch "$work/rec/drift/drift.m3u8" "$SECS" >"$work/watched.jsonl"
sdk stopEgress "{\"egressId\":\"$id\"}" >/dev/null
until sdk listEgress "{\"egressId\":\"$id\"}" | grep -q EGRESS_COMPLETE; do sleep 0.5; done
r=$(python3 bench/hls_drift.py report "$work/rec/drift/drift.m3u8" "$work/watched.jsonl")
echo "$r" >"$work/report.json"
get() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$r" "$1"; }
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
cat <<MD
### $(date -u +%Y-%m-%d) — HLS drift over $((SECS / 60)) minutes, $(nproc) cores, ${cpu_model}, FFmpeg $(ffmpeg -version | awk 'NR==1{print $3}')
One \`tessera serve\` room composite of ${participants} synthetic participants, 720p30 grid, 6 s HLS segments.

| what | value |
|---|---|
| segments / media seconds / program-date-time span | $(get segments) / $(get media_s) s / $(get pdt_span_s) s |
| segments (but the last) more than a frame off 6 s | $(get durations_off_target) |
| program-date-time against the media time in the segments, worst | $(get pdt_vs_media_max_ms) ms |
| segment listed after the wall time of its end: first sixth / last sixth (mean) | $(get lag_first_ms) / $(get lag_last_ms) ms |
| the same, smallest / largest | $(get lag_min_ms) / $(get lag_max_ms) ms |
| first audio minus first video in the first / second-to-last segment | $(get av_first_ms) / $(get av_last_ms) ms |
MD
