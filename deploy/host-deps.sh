#!/usr/bin/env bash
# Installs the Debian packages that the container and Kubernetes tests need (`make host-deps`,
# run by `make test`). Idempotent: when every package is installed it only checks and exits
# (well under a second). Debian 12 (bookworm), as root.
#
#   deploy/host-deps.sh            install what is missing
#   deploy/host-deps.sh --check    list what is missing, install nothing (exit 1 if anything is)
#
# Why each package (deploy/README.md has the same list):
#   podman, buildah        build the image (`make images`), run the rendered chart (chart-e2e)
#   runc                   the OCI runtime for podman and containerd (crun fails on cgroup v1 hybrid hosts)
#   netavark, aardvark-dns podman networks; aardvark-dns answers container names (only a Recommends of podman)
#   catatonit              `podman run --init`
#   iptables               netavark and kube-proxy program packet filters with it
#   debootstrap            the offline base image (deploy/build-base-image.sh)
#   podman-compose         runs deploy/compose.yaml in the compose test
#   containerd             the kubelet's container runtime in the Kubernetes test (tests/k8s)
#   containernetworking-plugins  bridge, host-local, portmap and loopback CNI plugins for pods
#   gcc, libc6-dev         compile the static pause binary (the pod sandbox image)
#   openssl                the test cluster's certificates
#   iproute2               network namespace and veth pair of the test cluster
#   python3-yaml           PyYAML for the chart scripts when python3 is Debian's own
set -euo pipefail

PACKAGES=(
  podman buildah runc netavark aardvark-dns catatonit iptables debootstrap podman-compose
  containerd containernetworking-plugins gcc libc6-dev openssl iproute2 python3-yaml
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done

if [[ ${1:-} == --check ]]; then
  if ((${#missing[@]})); then echo "missing Debian packages: ${missing[*]}"; exit 1; fi
  echo "host-deps: all ${#PACKAGES[@]} packages installed"
  exit 0
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "host-deps: missing Debian packages: ${missing[*]}" >&2
    echo "host-deps: installing them needs root: sudo make host-deps (or apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  command -v apt-get >/dev/null || { echo "host-deps: no apt-get: these tests need Debian 12 (bookworm) or a derivative; missing: ${missing[*]}" >&2; exit 1; }
  echo "host-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  # Package lists may be absent or stale on a fresh machine (apt-get would find nothing, or ask
  # the mirror for versions it no longer has): refresh them first. Only when something is missing.
  if ! apt-get update -q >"$log" 2>&1; then
    tail -10 "$log" >&2
    echo "host-deps: apt-get update failed; trying the install with the lists already here" >&2
  fi
  if ! apt-get install -y -q "${missing[@]}" >"$log" 2>&1; then
    tail -25 "$log" >&2
    echo "host-deps: apt-get could not install: ${missing[*]} (see the output above)" >&2
    exit 1
  fi
  echo "host-deps: installed ${missing[*]}"
fi

# The chart scripts need PyYAML in whichever python3 is first on PATH (pyenv, venv or Debian's).
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "host-deps: $(command -v python3) has no PyYAML; installing it with pip"
  python3 -m pip install --quiet 'PyYAML>=6,<7' || {
    echo "host-deps: pip could not install PyYAML for $(command -v python3)" >&2
    exit 1
  }
fi
