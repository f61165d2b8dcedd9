#!/usr/bin/env bash
# Installs the real peers the tests talk to, once: LiveKit's Python SDK in a venv
# and its browser and Node server SDKs from npm under target/ (all pinned, so a new
# SDK default cannot change what the tests exercise), and Debian's Chromium to run
# the browser one.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if ! command -v chromium >/dev/null; then
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
  echo "test peers: chromium $(chromium --version 2>/dev/null)" >&2
fi

# Xvfb and PulseAudio: the Chromium path's display and audio server.
if ! command -v Xvfb >/dev/null || ! command -v pulseaudio >/dev/null; then
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends xvfb pulseaudio >/dev/null
  echo "test peers: Xvfb and PulseAudio" >&2
fi

# nginx with the RTMP module: the RTMP receiver of the stream tests.
if ! [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]; then
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx libnginx-mod-rtmp >/dev/null
  echo "test peers: nginx with the RTMP module" >&2
fi

# socat: the TLS end of the RTMPS receiver (FFmpeg cannot listen on rtmps).
if ! command -v socat >/dev/null; then
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends socat openssl >/dev/null
  echo "test peers: socat" >&2
fi

# Redis: livekit-server's message bus for egress dispatch (fleet mode); iproute2 and
# nftables: the test host in a network namespace of its own, and UDP blocked to it.
if ! command -v redis-server >/dev/null || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server iproute2 nftables >/dev/null
  echo "test peers: redis-server, iproute2, nftables" >&2
fi

# LiveKit's own server, pinned, built by the ordinary Go client from the module proxy
# (v1.13.2 to v1.13.5 have no replace directives, so `go install` takes it as published).
# A failed install does not stop the others: its output is kept in install.log and the
# tests that need the server fail quoting it (tests/common/livekit.rs).
lk_dir=target/peers/livekit
lk_want="github.com/livekit/livekit-server/cmd/server@v1.13.5"
if [ "$(cat "$lk_dir/.installed" 2>/dev/null)" != "$lk_want" ] || ! [ -x "$lk_dir/server" ]; then
  mkdir -p "$lk_dir"
  rm -f "$lk_dir/server"
  echo "test peers: building livekit-server (a few minutes the first time)" >&2
  if GOBIN="$PWD/$lk_dir" GOFLAGS=-mod=mod go install "$lk_want" >"$lk_dir/install.log" 2>&1; then
    echo "$lk_want" > "$lk_dir/.installed"
    echo "test peers: $lk_want in $lk_dir" >&2
  else
    echo "test peers: livekit-server did not install (see $lk_dir/install.log)" >&2
  fi
fi

# LiveKit's own psrpc client (tests/peers/psrpc_peer, our code on LiveKit's published Go
# modules, pinned by its go.mod and go.sum): the fleet calls livekit-server never makes.
peer_dir=target/peers/psrpc-peer
peer_sum=$(cat tests/peers/psrpc_peer/go.mod tests/peers/psrpc_peer/go.sum tests/peers/psrpc_peer/main.go | sha256sum | cut -c1-16)
if [ "$(cat "$peer_dir/.installed" 2>/dev/null)" != "$peer_sum" ] || ! [ -x "$peer_dir/psrpc-peer" ]; then
  mkdir -p "$peer_dir"
  if (cd tests/peers/psrpc_peer && go build -o "../../../$peer_dir/psrpc-peer" .) >"$peer_dir/install.log" 2>&1; then
    echo "$peer_sum" > "$peer_dir/.installed"
    echo "test peers: psrpc-peer in $peer_dir" >&2
  else
    echo "test peers: psrpc-peer did not build (see $peer_dir/install.log)" >&2
  fi
fi

node_dir=target/peers-node
js="livekit-client@2.23.0 livekit-server-sdk@2.19.2 azurite@3.35.0"
if [ "$(cat "$node_dir/.installed" 2>/dev/null)" != "$js" ]; then
  mkdir -p "$node_dir"
  echo '{"private":true}' > "$node_dir/package.json"
  (cd "$node_dir" && npm install --silent --no-audit --no-fund $js)
  echo "$js" > "$node_dir/.installed"
  echo "test peers: $js in $node_dir" >&2
fi

# The storage emulators and the official SDKs the tests read the buckets back with:
# moto's S3 server (with boto3), a GCS emulator, Azure's Python SDK (Azurite is from npm above).
storage_venv=target/storage-venv
storage_want="moto[server]==5.2.5 gcp-storage-emulator==2026.7.19 azure-storage-blob==12.31.1"
if ! [ -x "$storage_venv/bin/python" ] || [ "$(cat "$storage_venv/.installed" 2>/dev/null)" != "$storage_want" ]; then
  python3 -m venv "$storage_venv"
  "$storage_venv/bin/pip" install -q --disable-pip-version-check $storage_want
  echo "$storage_want" > "$storage_venv/.installed"
  echo "test peers: $storage_want in $storage_venv" >&2
fi

venv=target/peers-venv
want="livekit==1.2.1 livekit-api==1.2.2"
stamp="$venv/.installed"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check $want
echo "$want" > "$stamp"
echo "test peers: $want in $venv" >&2
