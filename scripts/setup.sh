#!/usr/bin/env bash
# Installs what Tessera needs on Debian 12, idempotently: FFmpeg 5.1 development
# libraries and tools, clang (bindgen), pkg-config, the Vulkan loader and Mesa's
# CPU Vulkan driver lavapipe. Mesa 25 from bookworm-backports is preferred (a
# faster, more complete lavapipe); bookworm's 22.3.6 also works and is kept when
# backports cannot be reached. Run as root or with sudo. Fast when all is there.
set -euo pipefail

packages=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev
  ffmpeg libvulkan1 mesa-vulkan-drivers time
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
apt_install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }
# Where we record that backports were tried, so an unreachable suite is not retried every run.
stamp_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tessera"
mkdir -p "$stamp_dir"
want_backports=0
case "$(mesa_version)" in 25.*|26.*|27.*) ;; *) [ -e "$stamp_dir/backports-tried" ] || want_backports=1 ;; esac

# With Mesa 25 installed, the tests also check Mesa 22.3.6's lavapipe, unpacked
# (not installed) into the cache and chosen through VK_DRIVER_FILES.
lvp22="$stamp_dir/lavapipe-22.3.6"
fetch_lavapipe_22() {
  case "$(mesa_version)" in 22.3.6*) return 0 ;; esac
  [ -e "$lvp22/lvp_icd.json" ] && return 0
  local ver tmp
  ver=$(apt-cache madison mesa-vulkan-drivers 2>/dev/null | awk '$3 ~ /^22\.3\.6/ {print $3; exit}')
  if [ -z "$ver" ]; then $sudo apt-get update -q >/dev/null; ver=$(apt-cache madison mesa-vulkan-drivers | awk '$3 ~ /^22\.3\.6/ {print $3; exit}'); fi
  [ -n "$ver" ] || { echo "setup: Mesa 22.3.6 not offered by apt; its lavapipe test will be skipped" >&2; return 0; }
  tmp=$(mktemp -d)
  chmod 777 "$tmp"
  (cd "$tmp" && apt-get download -q "mesa-vulkan-drivers=$ver" >/dev/null 2>&1) || { echo "setup: could not download Mesa $ver" >&2; rm -rf "$tmp"; return 0; }
  mkdir -p "$lvp22"
  dpkg-deb -x "$tmp"/mesa-vulkan-drivers_*.deb "$lvp22/root"
  rm -rf "$tmp"
  printf '{"ICD":{"api_version":"1.1.230","library_path":"%s"},"file_format_version":"1.0.0"}\n' \
    "$lvp22/root/usr/lib/$(uname -m)-linux-gnu/libvulkan_lvp.so" > "$lvp22/lvp_icd.json"
  echo "setup: Mesa $ver lavapipe unpacked to $lvp22 for the tests" >&2
}

if [ ${#missing[@]} -eq 0 ] && [ $want_backports -eq 0 ]; then
  fetch_lavapipe_22
  exit 0
fi

if [ $want_backports -eq 1 ] && . /etc/os-release && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  # The backports suite on the same mirror the machine already uses.
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
    [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1)
    if [ -n "$mirror" ]; then
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
        | $sudo tee /etc/apt/sources.list.d/tessera-backports.sources >/dev/null
    fi
  fi
fi

echo "setup: installing ${missing[*]:-} (Mesa now: $(mesa_version || echo none))" >&2
$sudo apt-get update -q >/dev/null
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
if [ $want_backports -eq 1 ]; then
  touch "$stamp_dir/backports-tried"
  if apt_install -t bookworm-backports mesa-vulkan-drivers >/dev/null 2>&1; then
    echo "setup: lavapipe from bookworm-backports, Mesa $(mesa_version)" >&2
  else
    echo "setup: bookworm-backports not reachable; keeping Mesa $(mesa_version)" >&2
  fi
fi
fetch_lavapipe_22
