#!/usr/bin/env bash
# The compositor benchmark, one command: a 720p30 grid of 4 moving 640x360
# inputs, measured in one run:
#   1. render-and-readback alone (CPU backend; wgpu on this machine's adapter too)
#   2. the whole preview pipeline: render, mix, encode (x264 veryfast + AAC), mux
#   3. the floor: plain FFmpeg encoding the same raw frames with the same settings
#   4. the recorder alone (tessera record, its own process) recording 4 synthetic
#      participants (VP8 640x360 15 fps + Opus) at 720p30 in grid, from devroom and
#      from LiveKit's own livekit-server in the same run, next to its floor: FFmpeg
#      decoding 4 such VP8+Opus inputs and encoding the same output
#   5. a participant egress (tessera record --participant) of one of those 4 from
#      devroom at 720p30, next to its floor: FFmpeg decoding one such input and
#      encoding it at 720p30
#   6. track egress (tessera record --track) of that participant's camera and microphone,
#      written as sent, next to its floor: FFmpeg copying such tracks into WebM and Ogg
# Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh # livekit_yaml
SECS=${SECS:-20}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
cargo build --release -q
bin=target/release/tessera
export TESSERA_LOG=warn

# %e wall s, %U user s, %S system s, %M peak KiB
timed() { /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }; cat "$work/time"; }
cpu_per_s() { awk -v u="$1" -v s="$2" -v d="$SECS" 'BEGIN { printf "%.3f", (u + s) / d }'; }

cpu_render=$($bin bench-render --renderer cpu --frames 900)
gpu_render=$($bin bench-render --renderer gpu --frames 90 2>/dev/null || echo "unavailable")
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# The frames the pipeline renders, kept raw for the FFmpeg floor (not timed).
$bin preview --layout grid --participants 4 --duration "$SECS" --renderer cpu --raw-video-out "$work/frames.yuv" -o "$work/raw-pass.mp4" >/dev/null 2>&1

read -r p_wall p_user p_sys p_kib < <(timed $bin preview --layout grid --participants 4 --duration "$SECS" --renderer cpu -o "$work/pipeline.mp4")
# The same tones the synthetic participants make (300, 450, 600, 750 Hz, 0.08 each).
tones="0.08*sin(2*PI*300*t)+0.08*sin(2*PI*450*t)+0.08*sin(2*PI*600*t)+0.08*sin(2*PI*750*t)"
read -r f_wall f_user f_sys f_kib < <(timed ffmpeg -y -v error \
  -f rawvideo -pix_fmt yuv420p -s 1280x720 -r 30 -i "$work/frames.yuv" \
  -f lavfi -t "$SECS" -i "aevalsrc=${tones}|${tones}:s=48000" \
  -c:v libx264 -preset veryfast -profile:v main -b:v 3000k -bf 0 -g 60 -keyint_min 60 -sc_threshold 0 \
  -c:a aac -b:a 128k -ar 44100 -movflags +faststart "$work/floor.mp4")

# 4. The recorder. The room server and the publishers run in their own processes, not
# measured: devroom, then LiveKit's own livekit-server (scripts/test-peers.sh installs it),
# with our synthetic participants publishing into it.
key=devkey; secret=bench-secret-bench-secret-bench-secret
record_from() { # URL NAME [FLAGS...]: records $SECS s of room "bench" at URL; sets r_* from the run
  local url=$1 name=$2
  shift 2
  read -r r_wall r_user r_sys r_kib < <(/usr/bin/time -f "%e %U %S %M" -o "$work/time" \
    $bin record --url "$url" --api-key $key --api-secret $secret --room bench --layout grid --preset H264_720P_30 \
    --renderer cpu --duration "$SECS" "$@" -o "$work/record-$name.mp4" >"$work/record-$name.txt" 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
    cat "$work/time")
  r_secs=$(sed -n 's/^  duration: \([0-9.]*\) s.*/\1/p' "$work/record-$name.txt")
  r_cpu=$(awk -v u="$r_user" -v s="$r_sys" -v d="$r_secs" 'BEGIN { printf "%.3f", (u + s) / d }')
  r_p50=$(sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p' "$work/record-$name.txt")
  r_p95=$(sed -n 's/.*p95 \([0-9.]*\) ms.*/\1/p' "$work/record-$name.txt")
  r_first=$(sed -n 's/^  first frame \([0-9]*\) ms.*/\1/p' "$work/record-$name.txt")
}
port=${BENCH_PORT:-7979}
$bin devroom --bind "127.0.0.1:$port" --api-key $key --api-secret $secret --synthetic 4 --room bench >"$work/devroom.log" 2>&1 &
devroom_pid=$!
trap 'kill $devroom_pid 2>/dev/null || true' EXIT
sleep 3 # the room has video before the recorder joins
record_from "ws://127.0.0.1:$port" devroom
d_cpu=$r_cpu d_p50=$r_p50 d_p95=$r_p95 d_first=$r_first d_kib=$r_kib d_secs=$r_secs
# 5. One of the four alone, full frame (LiveKit's participant egress): the other three are
# unsubscribed, so neither received nor decoded.
record_from "ws://127.0.0.1:$port" participant --participant synthetic-1
pe_cpu=$r_cpu pe_p95=$r_p95 pe_kib=$r_kib
# 6. Its camera and microphone, each written as sent (LiveKit's track egress): no decode, no encode.
record_from "ws://127.0.0.1:$port" track-camera --track synthetic-1/camera
tc_cpu=$r_cpu tc_kib=$r_kib
record_from "ws://127.0.0.1:$port" track-mic --track synthetic-1/microphone
tm_cpu=$r_cpu tm_kib=$r_kib
kill $devroom_pid 2>/dev/null || true

lk=target/peers/livekit/server
if [ -x "$lk" ]; then
  lk_port=${BENCH_LK_PORT:-7989}
  livekit_yaml $lk_port >"$work/livekit.yaml"
  $lk --config "$work/livekit.yaml" >"$work/livekit.log" 2>&1 &
  lk_pid=$!
  trap 'kill $devroom_pid $lk_pid $pub_pid 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$lk_port/" >/dev/null && break; sleep 0.2; done
  $bin devroom --publish-to "ws://127.0.0.1:$lk_port" --api-key $key --api-secret $secret --synthetic 4 --room bench >"$work/publishers.log" 2>&1 &
  pub_pid=$!
  sleep 3
  record_from "ws://127.0.0.1:$lk_port" livekit
  kill $pub_pid $lk_pid 2>/dev/null || true
  l_row="| tessera record, livekit-server v1.13.5 | ${r_cpu} | ${r_p50} / ${r_p95} ms | ${r_first} ms | $((r_kib / 1024)) MiB |"
else
  l_row="| tessera record, livekit-server | not installed (scripts/test-peers.sh) | — | — | — |"
fi
r_cpu=$d_cpu r_p50=$d_p50 r_p95=$d_p95 r_first=$d_first r_kib=$d_kib r_secs=$d_secs
# Its floor: the same decodes (4 VP8 640x360 15 fps at 600 kbps, 4 Opus) and the same encode.
for i in 0 1 2 3; do
  [ -s "$work/in$i.webm" ] || ffmpeg -y -v error -f lavfi -i "testsrc2=s=640x360:r=15:d=$SECS" \
    -f lavfi -i "sine=f=$((300 + 150 * i)):d=$SECS:sample_rate=48000" -ac 2 \
    -c:v libvpx -deadline realtime -cpu-used 8 -b:v 600k -g 30 -c:a libopus -b:a 64k "$work/in$i.webm"
done
read -r rf_wall rf_user rf_sys rf_kib < <(timed ffmpeg -y -v error \
  -i "$work/in0.webm" -i "$work/in1.webm" -i "$work/in2.webm" -i "$work/in3.webm" \
  -filter_complex "[0:v][1:v][2:v][3:v]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0,fps=30[v];[0:a][1:a][2:a][3:a]amix=inputs=4[a]" \
  -map "[v]" -map "[a]" -c:v libx264 -preset veryfast -tune zerolatency -profile:v main -b:v 3000k -bf 0 -g 60 \
  -c:a aac -b:a 128k -ar 44100 "$work/record-floor.mp4")
rf_cpu=$(cpu_per_s "$rf_user" "$rf_sys")
read -r pf_wall pf_user pf_sys pf_kib < <(timed ffmpeg -y -v error -i "$work/in1.webm" \
  -vf "scale=1280:720,fps=30" -c:v libx264 -preset veryfast -tune zerolatency -profile:v main -b:v 3000k -bf 0 -g 60 \
  -c:a aac -b:a 128k -ar 44100 "$work/participant-floor.mp4")
pf_cpu=$(cpu_per_s "$pf_user" "$pf_sys")
read -r _ tcf_user tcf_sys _ < <(timed ffmpeg -y -v error -i "$work/in1.webm" -map 0:v -c copy "$work/track-floor.webm")
tcf_cpu=$(cpu_per_s "$tcf_user" "$tcf_sys")
read -r _ tmf_user tmf_sys _ < <(timed ffmpeg -y -v error -i "$work/in1.webm" -map 0:a -c copy "$work/track-floor.ogg")
tmf_cpu=$(cpu_per_s "$tmf_user" "$tmf_sys")
pe_ratio=$(awk -v a="$pe_cpu" -v b="$pf_cpu" 'BEGIN { printf "%.2f", a / b }')
r_ratio=$(awk -v a="$r_cpu" -v b="$rf_cpu" 'BEGIN { printf "%.2f", a / b }')

p_cpu=$(cpu_per_s "$p_user" "$p_sys")
f_cpu=$(cpu_per_s "$f_user" "$f_sys")
ratio=$(awk -v a="$p_cpu" -v b="$f_cpu" 'BEGIN { printf "%.2f", a / b }')
mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo none)
cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)

cat <<MD
### $(date -u +%Y-%m-%d) — $(nproc) cores, ${cpu_model}, Mesa ${mesa}, FFmpeg $(ffmpeg -version | awk 'NR==1{print $3}')
720p30 grid of 4 moving 640x360 inputs, ${SECS} s, x264 veryfast 3000 kbps Main no B-frames, AAC 128 kbps.

| what | CPU-s per output s | ms per frame (mean / p95) | peak memory |
|---|---|---|---|
| render-and-readback, CPU backend | $(field "$cpu_render" cpu_s_per_output_s_at_30fps) | $(field "$cpu_render" cpu_ms_per_frame) CPU; $(field "$cpu_render" wall_ms_mean) / $(field "$cpu_render" wall_ms_p95) wall | $(field "$cpu_render" peak_rss_mib) MiB |
| render-and-readback, wgpu on this adapter | $(field "$gpu_render" cpu_s_per_output_s_at_30fps) | $(field "$gpu_render" cpu_ms_per_frame) CPU; $(field "$gpu_render" wall_ms_mean) / $(field "$gpu_render" wall_ms_p95) wall | $(field "$gpu_render" peak_rss_mib) MiB |
| whole preview pipeline (render, mix, encode, mux) | ${p_cpu} | — | $((p_kib / 1024)) MiB |
| FFmpeg floor (same raw frames, same settings) | ${f_cpu} | — | $((f_kib / 1024)) MiB |

Pipeline / floor: **${ratio}x** (target at most 1.3x). Render-and-readback target: at most 3 ms CPU per 720p frame.

Recorder (\`tessera record\`, its own process) recording 4 synthetic participants (VP8 640x360 15 fps + Opus,
published from another process into devroom, then into livekit-server) at 720p30 in grid for ${r_secs} s,
x264 veryfast zerolatency 3000 kbps:

| what | CPU-s per recorded s | arrival to encoded packet (p50 / p95) | first frame after joining | peak memory |
|---|---|---|---|---|
| tessera record, devroom | ${r_cpu} | ${r_p50} / ${r_p95} ms | ${r_first} ms | $((r_kib / 1024)) MiB |
${l_row}
| FFmpeg floor (same 4 VP8+Opus decodes, same encode) | ${rf_cpu} | — | — | $((rf_kib / 1024)) MiB |

Recorder / floor: **${r_ratio}x**. Targets: at most 0.5 of a core, p95 under 100 ms, first frame within 1 s of the
room having video, under 200 MB.

Participant egress of one of the same four (devroom), 720p30, same encoder settings:

| what | CPU-s per recorded s | arrival to encoded packet (p95) | peak memory |
|---|---|---|---|
| tessera record --participant synthetic-1 | ${pe_cpu} | ${pe_p95} ms | $((pe_kib / 1024)) MiB |
| FFmpeg floor (one VP8+Opus decode, scaled to 720p30, same encode) | ${pf_cpu} | — | $((pf_kib / 1024)) MiB |

Participant egress / floor: **${pe_ratio}x** (LiveKit budgets 2 cores for a participant egress).

Track egress of the same participant's tracks (devroom), written as sent (the recorder process's whole CPU:
joining, WebRTC, SRTP, jitter buffer, muxing):

| what | CPU-s per recorded s | peak memory |
|---|---|---|
| tessera record --track synthetic-1/camera (VP8 into WebM) | ${tc_cpu} | $((tc_kib / 1024)) MiB |
| FFmpeg floor (the same kind of VP8 track copied into WebM) | ${tcf_cpu} | — |
| tessera record --track synthetic-1/microphone (Opus into Ogg) | ${tm_cpu} | $((tm_kib / 1024)) MiB |
| FFmpeg floor (the same kind of Opus track copied into Ogg) | ${tmf_cpu} | — |
MD
