# Shared by the service benches: devroom with synthetic participants (4 unless
# `participants` says otherwise; `devroom_flags` adds flags) in room "bench" and
# `tessera serve` recording from it, plus the helpers that drive and measure them.
# `serve_yaml` adds lines to the service's config.
# Needs (prepare sets the first four): bin, work, key, secret, room_port, api_port.

# The common start: the release build and the test peers, a fresh work directory
# target/bench/$1 (absolute, in `work`), `bin`, and the API key and secret.
prepare() {
  work=${BENCH_DIR:-target/bench}/$1
  rm -rf "$work" && mkdir -p "$work"
  work=$(cd "$work" && pwd)
  cargo build --release -q
  scripts/test-peers.sh
  # TESSERA_BIN: another build to measure (an A/B against an older commit on the same machine).
  bin=${TESSERA_BIN:-target/release/tessera}
  export TESSERA_LOG=warn
  key=devkey secret=bench-secret-bench-secret-bench-secret
}

# Starts both; sets devroom_pid and serve_pid (the caller sets its own trap).
start_room_and_serve() {
  $bin devroom --bind "127.0.0.1:$room_port" --api-secret "$secret" --synthetic "${participants:-4}" ${devroom_flags:-} --room bench >"$work/devroom.log" 2>&1 &
  devroom_pid=$!
  cat >"$work/tessera.yaml" <<YAML
api_key: $key
api_secret: $secret
ws_url: ws://127.0.0.1:$room_port
listen: 127.0.0.1:$api_port
output_dir: $work/rec
renderer: cpu
log_level: warn
${serve_yaml:-}
YAML
  $bin serve --config "$work/tessera.yaml" >"$work/serve.out" 2>"$work/serve.log" &
  serve_pid=$!
  export LIVEKIT_URL="http://127.0.0.1:$api_port" LIVEKIT_API_KEY=$key LIVEKIT_API_SECRET=$secret
}

# One call through LiveKit's Node server SDK (tests/peers/egress_node.mjs).
sdk() { node tests/peers/egress_node.mjs "$@"; }
# CPU seconds (user + system) of a process so far, at 100 ticks per second.
cpu_of() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }

# livekit-server's config on loopback: signal on port $1, RTC on $1 + 1, this bench's key;
# $2: more YAML (redis:, room:).
livekit_yaml() {
  cat <<YAML
port: $1
bind_addresses: [127.0.0.1]
keys:
  $key: $secret
rtc:
  udp_port: $(($1 + 1))
  tcp_port: 0
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
${2:-}
YAML
}
