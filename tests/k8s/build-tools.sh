#!/usr/bin/env bash
# Builds the pinned binaries and images of the test Kubernetes cluster (tests/k8s) into OUT,
# from the Go module proxy and Debian's compiler only. `make k8s-tools` calls it; every piece that
# already exists is kept, so a second run does nothing. Versions come from the Makefile.
#
#   tests/k8s/build-tools.sh OUT
#
# OUT/bin:    kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#             (k8s.io/kubernetes $K8S_VERSION through the wrapper module in k8sbuild/, because
#             its go.mod replaces the staging modules with local folders), etcd ($ETCD_VERSION),
#             coredns ($COREDNS_VERSION, static), local-path-provisioner ($LOCAL_PATH_VERSION)
# OUT/images: pause.tar (static pause.c from the kubernetes module), coredns.tar: docker archives
#             that `ctr images import` loads, so nothing is ever pulled from a registry
# OUT/local-path-storage.yaml: the provisioner's upstream manifests (RBAC, StorageClass, ConfigMap)
#
# About 10 minutes and 2.5 GB of memory with cold Go caches on 2 cores; under a minute warm.
set -euo pipefail
: "${K8S_VERSION:?}" "${ETCD_VERSION:?}" "${COREDNS_VERSION:?}" "${LOCAL_PATH_VERSION:?}"
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:?usage: build-tools.sh OUT}" && cd "$1" && pwd)
mkdir -p "$out/bin" "$out/images"
# A pin changed since the last build: drop what it built, so only that is rebuilt.
if [[ -f $out/tools.json ]]; then
  pinned() { grep -q "\"$1\": \"$2\"" "$out/tools.json"; }
  pinned kubernetes "$K8S_VERSION" || rm -f "$out"/bin/kube* "$out/images/pause.tar"
  pinned etcd "$ETCD_VERSION" || rm -f "$out/bin/etcd"
  pinned coredns "$COREDNS_VERSION" || rm -f "$out/bin/coredns" "$out/images/coredns.tar"
  pinned localPath "$LOCAL_PATH_VERSION" || rm -f "$out/bin/local-path-provisioner" "$out/local-path-storage.yaml"
  rm "$out/tools.json"
fi
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../../deploy/containers.conf}
export GOFLAGS="-mod=readonly -buildvcs=false"
step() { echo "k8s-tools: $*"; }
moddir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 \
-X k8s.io/client-go/pkg/version.gitMinor=$minor"

k8s_cmds=()
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [[ -x $out/bin/$c ]] || k8s_cmds+=("k8s.io/kubernetes/cmd/$c")
done
if ((${#k8s_cmds[@]})); then
  grep -q "k8s.io/kubernetes $K8S_VERSION" "$here/k8sbuild/go.mod" ||
    { echo "k8sbuild/go.mod does not require k8s.io/kubernetes $K8S_VERSION" >&2; exit 1; }
  step "building ${k8s_cmds[*]##*/} $K8S_VERSION"
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  (cd "$here/k8sbuild" && go build -ldflags "$ldflags" -o "$tmp/" "${k8s_cmds[@]}")
  mv "$tmp"/* "$out/bin/" && rmdir "$tmp"
fi
if [[ ! -x $out/bin/etcd ]]; then
  step "building etcd $ETCD_VERSION"
  (cd "$here/k8sbuild" && go build -ldflags "-s -w" -o "$out/bin/etcd.tmp" go.etcd.io/etcd/server/v3 && mv "$out/bin/etcd.tmp" "$out/bin/etcd")
fi
# CoreDNS and the provisioner are modules of their own, installable as they are; static
# (CGO_ENABLED=0), so their images need no libc.
if [[ ! -x $out/bin/coredns ]]; then
  step "building coredns $COREDNS_VERSION"
  GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN=$out/bin go install -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
fi
if [[ ! -x $out/bin/local-path-provisioner ]]; then
  step "building local-path-provisioner $LOCAL_PATH_VERSION"
  GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN=$out/bin go install -ldflags "-s -w" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
fi
if [[ ! -f $out/local-path-storage.yaml ]]; then
  cp "$(moddir "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION")/deploy/local-path-storage.yaml" "$out/local-path-storage.yaml"
  chmod u+w "$out/local-path-storage.yaml"
fi

# Images: a root filesystem tarred into `podman import`, saved as a docker archive under a fixed
# name, and the podman copy removed again (containerd is where they are used).
pause_ref=localhost/mycel-k8s/pause:$K8S_VERSION
coredns_ref=localhost/mycel-k8s/coredns:$COREDNS_VERSION
image() { # image NAME REF ROOTFS ENTRYPOINT
  local name=$1 ref=$2 rootfs=$3 entry=$4
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . | podman import -q --change "ENTRYPOINT $entry" - "$ref" >/dev/null
  podman save -q --format docker-archive -o "$out/images/$name.tar.tmp" "$ref"
  podman rmi "$ref" >/dev/null
  mv "$out/images/$name.tar.tmp" "$out/images/$name.tar"
}
if [[ ! -f $out/images/pause.tar ]]; then
  step "building the pause image (static pause.c of k8s.io/kubernetes $K8S_VERSION)"
  src=$(moddir "k8s.io/kubernetes@$K8S_VERSION")/build/pause/linux/pause.c
  root=$(mktemp -d "$out/.pause.XXXXXX")
  gcc -Os -static -s -DVERSION="$K8S_VERSION-mycel" -o "$root/pause" "$src"
  image pause "$pause_ref" "$root" '["/pause"]'
  rm -rf "$root"
fi
if [[ ! -f $out/images/coredns.tar ]]; then
  step "building the coredns image"
  root=$(mktemp -d "$out/.coredns.XXXXXX")
  cp "$out/bin/coredns" "$root/coredns"
  image coredns "$coredns_ref" "$root" '["/coredns"]'
  rm -rf "$root"
fi
cat >"$out/tools.json" <<JSON
{
  "kubernetes": "$K8S_VERSION",
  "etcd": "$ETCD_VERSION",
  "coredns": "$COREDNS_VERSION",
  "localPath": "$LOCAL_PATH_VERSION",
  "images": { "pause": "$pause_ref", "coredns": "$coredns_ref" }
}
JSON
step "ready in $out"
