#!/usr/bin/env bash
# What each extra output costs on top of a plain file recording, one command:
# `tessera serve` records devroom's 4 synthetic participants (720p30 grid) for
# SECS seconds per configuration, one configuration at a time, and the whole
# process's CPU is measured per recorded second:
#   file; file + 1 RTMP; file + 2 RTMP; file + SRT; file + HLS (2 s segments); file + images (every 2 s)
# RTMP goes to nginx with the RTMP module, SRT to an FFmpeg listener, both on loopback and
# not measured. Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-20}
source bench/lib.sh
prepare outputs
mkdir -p "$work/nginx-rec" "$work/nginx-logs"
room_port=${BENCH_PORT:-7976}
api_port=$((room_port + 1)) rtmp_port=$((room_port + 2)) srt_port=$((room_port + 3))
start_room_and_serve
cat >"$work/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
user root;
daemon off;
master_process off;
error_log $work/nginx-logs/error.log;
pid $work/nginx.pid;
events {}
rtmp { server { listen 127.0.0.1:$rtmp_port; application live { live on; record off; } } }
EOF
nginx -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
srt_pid=""
trap 'kill $devroom_pid $serve_pid $nginx_pid $srt_pid 2>/dev/null || true' EXIT
sleep 3

rtmp() { echo "\"rtmp://127.0.0.1:$rtmp_port/live/$1\""; }

# One recording with `outputs` (EncodedOutputs JSON); prints CPU-s per recorded s of the whole process.
measure() {
  local outputs=$1 id c0 c1 secs
  id=$(sdk startRoomComposite "{\"roomName\":\"bench\",\"layout\":\"grid\",\"outputs\":$outputs}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"]["egressId"])')
  until sdk listEgress "{\"egressId\":\"$id\"}" | grep -q EGRESS_ACTIVE; do sleep 0.1; done
  c0=$(cpu_of $serve_pid)
  sleep "$SECS"
  c1=$(cpu_of $serve_pid)
  sdk stopEgress "{\"egressId\":\"$id\"}" >/dev/null
  until sdk listEgress "{\"egressId\":\"$id\"}" | grep -q EGRESS_COMPLETE; do sleep 0.2; done
  awk -v a="$c0" -v b="$c1" -v d="$SECS" 'BEGIN { printf "%.3f", (b - a) / d }'
}

file() { echo "\"file\":{\"filepath\":\"$1.mp4\"}"; }
base=$(measure "{$(file base)}")
rtmp1=$(measure "{$(file rtmp1),\"stream\":{\"urls\":[$(rtmp a)]}}")
rtmp2=$(measure "{$(file rtmp2),\"stream\":{\"urls\":[$(rtmp b),$(rtmp c)]}}")
ffmpeg -v error -i "srt://127.0.0.1:$srt_port?mode=listener" -c copy -f mpegts -y "$work/srt.ts" 2>/dev/null &
srt_pid=$!
sleep 1
srt=$(measure "{$(file srt),\"stream\":{\"urls\":[\"srt://127.0.0.1:$srt_port\"]}}")
hls=$(measure "{$(file hls),\"segments\":{\"filenamePrefix\":\"hls/bench\",\"segmentDuration\":2}}")
images=$(measure "{$(file images),\"images\":{\"captureInterval\":2,\"filenamePrefix\":\"img/bench\"}}")
extra() { awk -v x="$1" -v b="$base" 'BEGIN { printf "%+.3f", x - b }'; }
mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo unknown)
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
cat <<EOF
### $(date -u +%Y-%m-%d) — outputs, $(nproc) cores, ${cpu_model}, Mesa ${mesa}, FFmpeg $(ffmpeg -version | awk 'NR==1{print $3}')
One \`tessera serve\` room composite at a time (4 synthetic participants, 720p30 grid, x264 veryfast zerolatency
3000 kbps), ${SECS} s each; CPU of the whole process per recorded second.

| outputs | CPU-s per recorded s | extra over the file alone |
|---|---|---|
| MP4 file | ${base} | — |
| file + 1 RTMP (nginx) | ${rtmp1} | $(extra "$rtmp1") |
| file + 2 RTMP | ${rtmp2} | $(extra "$rtmp2") |
| file + SRT (FFmpeg listener) | ${srt} | $(extra "$srt") |
| file + HLS (2 s segments) | ${hls} | $(extra "$hls") |
| file + JPEG every 2 s | ${images} | $(extra "$images") |
EOF
