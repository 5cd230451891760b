# natter — make run starts everything on one machine; make test is what CI runs.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
PKGS    := ./streams/... ./pkg/... ./services/... ./test/...
BIN     := bin/natter
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test check unit e2e fuzz test-scylla bench clean

run: build ## run natter: every component, embedded NATS and store under ./data
	$(BIN) run

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./services/cmd/natter

test: check unit e2e ## vet, gofmt, unit and end-to-end tests, all with -race

check:
	@bad=$$(gofmt -l streams pkg services test); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 10m ./streams/... ./pkg/... ./services/...

e2e:
	$(GO) test -race -count=1 -timeout 10m ./test/...

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME each
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/protocol

test-scylla: ## the Scylla store against NATTER_SCYLLA_HOSTS (see docs/operations.md)
	@test -n "$$NATTER_SCYLLA_HOSTS" || { echo "set NATTER_SCYLLA_HOSTS=host[,host...]"; exit 1; }
	$(GO) test -race -count=1 -timeout 30m ./pkg/store/scylla/...

clean:
	rm -rf bin
