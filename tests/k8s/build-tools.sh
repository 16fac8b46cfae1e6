#!/usr/bin/env bash
# Builds the binaries and images of the test Kubernetes cluster (tests/k8s) into OUT, from the Go
# module proxy and Debian's compiler only. `make k8s-tools` calls it when OUT/tools.json is
# missing; OUT's name carries a hash of the inputs (k8sbuild/ and this script), so a change of any
# pin builds a new folder and an unchanged one is never rebuilt.
#
#   tests/k8s/build-tools.sh OUT
#
# Versions are pinned in one place, k8sbuild/go.mod: k8s.io/kubernetes (its go.mod replaces the
# staging modules with local folders, so `go install` refuses it; the wrapper module replaces them
# with their published versions), etcd, CoreDNS and local-path-provisioner.
#
# OUT/bin:    kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd
#             coredns (k8sbuild/coredns: only the plugins the cluster's Corefile uses)
#             local-path-provisioner; all static (CGO_ENABLED=0)
# OUT/images: pause.tar (static pause.c of the kubernetes module), coredns.tar: docker archives
#             that `ctr images import` loads, so nothing is ever pulled from a registry
# OUT/local-path-storage.yaml: the provisioner's upstream manifests (RBAC, StorageClass, ConfigMap)
# OUT/tools.json: the versions, written last (its presence means the folder is complete)
#
# Everything but the provisioner is one `go build`, so the packages the binaries share (client-go,
# apimachinery, grpc, etcd's client) compile once and the links run in parallel. The provisioner
# follows in a second `go build` of the same module (it imports github.com/Sirupsen/logrus, which
# collides with etcd's github.com/sirupsen/logrus within one build), reusing what the first built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:?usage: build-tools.sh OUT}" && cd "$1" && pwd)
rm -f "$out/tools.json"
mkdir -p "$out/bin" "$out/images"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../../deploy/containers.conf}
export GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
step() { echo "k8s-tools: $*"; }
cd "$here/k8sbuild"
version() { go list -m -f '{{.Version}}' "$1"; }
moddir() { go list -m -f '{{.Dir}}' "$1"; }
t0=$(date +%s)
# go build fetches what it compiles from the Go module proxy; pause.c and the provisioner's
# manifests come from module folders, fetched first.
go mod download k8s.io/kubernetes github.com/rancher/local-path-provisioner
K8S_VERSION=$(version k8s.io/kubernetes)
ETCD_VERSION=$(version go.etcd.io/etcd/server/v3)
COREDNS_VERSION=$(version github.com/coredns/coredns)
LOCAL_PATH_VERSION=$(version github.com/rancher/local-path-provisioner)

# Images need podman; built beside the Go build (pause is a few seconds of gcc).
pause_ref=localhost/mycel-k8s/pause:$K8S_VERSION
coredns_ref=localhost/mycel-k8s/coredns:$COREDNS_VERSION
image() { # image NAME REF ROOTFS ENTRYPOINT: a root filesystem as a docker archive under a fixed name
  local name=$1 ref=$2 rootfs=$3 entry=$4
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . | podman import -q --change "ENTRYPOINT $entry" - "$ref" >/dev/null
  podman save -q --format docker-archive -o "$out/images/$name.tar.tmp" "$ref"
  podman rmi "$ref" >/dev/null
  mv "$out/images/$name.tar.tmp" "$out/images/$name.tar"
}
pause_root=$(mktemp -d "$out/.pause.XXXXXX")
trap 'rm -rf "$pause_root" "$out"/.coredns.* "$out"/.build.*' EXIT
gcc -Os -static -s -DVERSION="$K8S_VERSION-mycel" -o "$pause_root/pause" "$(moddir k8s.io/kubernetes)/build/pause/linux/pause.c"
image pause "$pause_ref" "$pause_root" '["/pause"]' &
pause_job=$!

minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 \
-X k8s.io/client-go/pkg/version.gitMinor=$minor"
tmp=$(mktemp -d "$out/.build.XXXXXX")
step "building Kubernetes $K8S_VERSION, etcd $ETCD_VERSION and CoreDNS $COREDNS_VERSION (several minutes with a cold Go build cache)"
go build -ldflags "$ldflags" -o "$tmp/" ./coredns go.etcd.io/etcd/server/v3 \
  k8s.io/kubernetes/cmd/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kube-proxy,kubectl}
mv "$tmp/server" "$tmp/etcd" # the package's folder names the binary
step "building local-path-provisioner $LOCAL_PATH_VERSION"
go build -ldflags "-s -w" -o "$tmp/" github.com/rancher/local-path-provisioner
mv "$tmp"/* "$out/bin/"
cp "$(moddir github.com/rancher/local-path-provisioner)/deploy/local-path-storage.yaml" "$out/local-path-storage.yaml"
chmod u+w "$out/local-path-storage.yaml"

wait "$pause_job"
coredns_root=$(mktemp -d "$out/.coredns.XXXXXX")
cp "$out/bin/coredns" "$coredns_root/coredns"
image coredns "$coredns_ref" "$coredns_root" '["/coredns"]'

cat >"$out/tools.json.tmp" <<JSON
{
  "kubernetes": "$K8S_VERSION",
  "etcd": "$ETCD_VERSION",
  "coredns": "$COREDNS_VERSION",
  "localPath": "$LOCAL_PATH_VERSION",
  "images": { "pause": "$pause_ref", "coredns": "$coredns_ref" }
}
JSON
mv "$out/tools.json.tmp" "$out/tools.json"
step "ready in $out after $(($(date +%s) - t0)) s"
