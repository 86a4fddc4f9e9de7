#!/usr/bin/env bash
# Makes WebGPU work on a GPU-less Debian 12 machine: the Vulkan loader plus Mesa's lavapipe
# (software Vulkan) from bookworm-backports. Debian 12's own Mesa 22.3 lavapipe is rejected by Dawn
# ("shaderUniform*ArrayDynamicIndexing required"); Mesa 25 from backports is accepted.
#
# Idempotent. Does nothing when a WebGPU adapter already exists. Without root it prints the exact
# commands to run and exits 1. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
probe="$here/probe-adapter.mjs"

has_adapter() {
  node "$probe" >/dev/null 2>&1
}

if [ -f "$here/../node_modules/webgpu/package.json" ] || [ -d "$here/../packages/kernels/node_modules/webgpu" ]; then
  if has_adapter; then
    echo "setup-headless-gpu: a WebGPU adapter is already available; nothing to do."
    exit 0
  fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-headless-gpu: no apt-get; install a Vulkan driver (e.g. Mesa >= 24 lavapipe) by hand." >&2
  exit 1
fi

# The backports entry reuses the URI of the system's own Debian entry.
src_dir=/etc/apt/sources.list.d
uri="$(grep -hsE '^(URIs:|deb )' "$src_dir"/debian.sources /etc/apt/sources.list 2>/dev/null \
  | grep -m1 -oE 'https?://[^ ]*/debian/?' || true)"
uri="${uri:-http://deb.debian.org/debian}"
backports_file="$src_dir/keel-bookworm-backports.sources"

commands=$(cat <<CMDS
cat > $backports_file <<'SRC'
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y libvulkan1
DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports mesa-vulkan-drivers
CMDS
)

need_install=1
if dpkg-query -W -f='${Status} ${Version}\n' mesa-vulkan-drivers 2>/dev/null | grep -q 'install ok installed .*bpo' \
  && dpkg-query -W -f='${Status}\n' libvulkan1 2>/dev/null | grep -q 'install ok installed'; then
  need_install=0
fi

if [ "$need_install" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-headless-gpu: root is needed to install the software Vulkan driver. Run as root:" >&2
    echo "$commands" >&2
    exit 1
  fi
  echo "setup-headless-gpu: installing libvulkan1 and Mesa lavapipe from bookworm-backports"
  bash -euo pipefail -c "$commands"
else
  echo "setup-headless-gpu: libvulkan1 and backports Mesa lavapipe already installed."
fi

# lavapipe complains without a runtime dir; keel's scripts export the same path.
mkdir -p -m 700 "/tmp/xdg-$(id -u)"
