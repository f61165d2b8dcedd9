#!/usr/bin/env bash
# Installs the real peers the tests talk to, once: LiveKit's Python SDK (pinned,
# so a new SDK default cannot change what the tests exercise) in a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
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
