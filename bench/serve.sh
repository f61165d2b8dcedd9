#!/usr/bin/env bash
# The service benchmark, one command: `tessera serve` running JOBS room composites
# at once (720p30 grid, each recording devroom's 4 synthetic participants), started
# through LiveKit's Node server SDK. Measures:
#   - start latency: the job created (StartRoomCompositeEgress answered) -> ACTIVE (its first frame
#     encoded), from the EgressInfo's own timestamps (the SDK's process start-up is not counted)
#   - CPU per job (its named threads, from /metrics) and the whole process, per recorded second
#   - peak memory of the process, and what admission would allow on this machine
# devroom and the publishers run in their own process, not measured.
# Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-30}
JOBS=${JOBS:-3}
source bench/lib.sh
prepare serve
room_port=${BENCH_PORT:-7978}
api_port=$((room_port + 1))
start_room_and_serve
trap 'kill $devroom_pid $serve_pid 2>/dev/null || true' EXIT
sleep 3 # the room has video before the recordings start

ids=() created=()
cpu0=$(cpu_of $serve_pid)
for i in $(seq 1 "$JOBS"); do
  read -r id at < <(sdk startRoomComposite "{\"roomName\":\"bench\",\"layout\":\"grid\",\"file\":{\"filepath\":\"job$i.mp4\"}}" |
    python3 -c 'import json,sys; i = json.load(sys.stdin)["ok"]; print(i["egressId"], i["updatedAt"])')
  ids+=("$id") created+=("$at")
done
sleep "$SECS"
metrics=$(curl -s "http://127.0.0.1:$api_port/metrics")
cpu1=$(cpu_of $serve_pid)
hwm=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$serve_pid/status")
for id in "${ids[@]}"; do sdk stopEgress "{\"egressId\":\"$id\"}" >/dev/null; done
for id in "${ids[@]}"; do
  until sdk listEgress "{\"egressId\":\"$id\"}" | grep -q EGRESS_COMPLETE; do sleep 0.2; done
done
durations="" actives=()
for i in "${!ids[@]}"; do
  read -r d a < <(sdk listEgress "{\"egressId\":\"${ids[$i]}\"}" | python3 -c '
import json, sys
i = json.load(sys.stdin)["ok"][0]
print(int(i["fileResults"][0]["duration"]) / 1e9, (int(i["fileResults"][0]["startedAt"]) - int(sys.argv[1])) // 1000000)' "${created[$i]}")
  durations="$durations $d" actives+=("$a")
done
job_cpu=$(for id in "${ids[@]}"; do
  echo "$metrics" | awk -v id="$id" -F' ' '$1 ~ "tessera_job_cpu_seconds\\{egress_id=\""id"\"\\}" { print $2 }'
done)
mean() { tr ' ' '\n' | awk 'NF { s += $1; n++ } END { printf "%.0f", s / n }'; }
active_ms=$(echo "${actives[@]}" | mean)
active_max=$(printf '%s\n' "${actives[@]}" | sort -n | tail -1)
# A job's CPU is measured from its start to the scrape: about SECS plus its start latency.
per_job=$(echo $job_cpu | tr ' ' '\n' | awk -v d="$SECS" 'NF { s += $1; n++ } END { printf "%.3f", s / n / d }')
process=$(awk -v a="$cpu0" -v b="$cpu1" -v d="$SECS" -v n="$JOBS" 'BEGIN { printf "%.3f", (b - a) / d / n }')
budget=$(echo "$metrics" | awk '$1 == "tessera_cpu_budget_cores" { print $2 }')
mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo unknown)
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
cat <<EOF
### $(date -u +%Y-%m-%d) — tessera serve, $(nproc) cores, ${cpu_model}, Mesa ${mesa}, FFmpeg $(ffmpeg -version | awk 'NR==1{print $3}')
$JOBS room composites at once in one \`tessera serve\` process, each recording devroom's 4 synthetic participants
(VP8 640x360 15 fps + Opus) at 720p30 in grid (x264 veryfast zerolatency 3000 kbps) for about ${SECS} s,
started through LiveKit's Node server SDK; CPU renderer.

| what | value |
|---|---|
| start: job created -> ACTIVE, first frame encoded (mean / worst) | ${active_ms} / ${active_max} ms |
| CPU per job, its own threads (from /metrics), per recorded s | ${per_job} |
| CPU of the whole process per job, per recorded s | ${process} |
| peak memory of the process | ${hwm} MiB |
| recorded durations (s) | $(echo $durations) |
| admission budget on this machine | ${budget} cores (0.5 per 720p30 composite) |
EOF
