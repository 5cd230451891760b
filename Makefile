# natter — make run starts everything on one machine; make test is what CI runs.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
UNIT_PKGS := ./streams/... ./pkg/... ./sdk/go/... ./services/... ./examples/...
PKGS    := $(UNIT_PKGS) ./test/...
MODULES := streams pkg sdk/go services examples test
BIN     := bin/natter
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test check static lint unit e2e web fuzz fuzz-long test-scylla test-invariant test-fault bench bench-peers bench-floor bench-search bench-search-format clean

run: build ## run natter: every component, embedded NATS and store under ./data
	$(BIN) run

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./services/cmd/natter

# unit and e2e in one go test, the end-to-end suite named first. go test runs two packages at a
# time (-p, the number of CPUs), roughly in the order they are named, and a package's tests one after
# another: test/e2e alone takes 3.5-4 minutes of mostly waiting (processes started, killed, restarted),
# so it runs beside all the unit packages instead of after them. Measured on 2 cores on 7 Dec 2026:
# unit then e2e 10 min 19 s (5:38 + 4:41), in one go test 8 min 30 s, and with the seven longest
# packages named first, 8 min 41 s (what is left is two slots' worth of work). Earlier, with a smaller
# end-to-end suite, one go test was measured no faster (213-296 s against 253-294 s).
# make test runs static, not check: golangci-lint's build would take a CI run on a new machine past
# its 15 minutes (figures at lint, below).
test: static ## gofmt, tidy modules, vet, unit and end-to-end tests, all with -race
	$(GO) test -race -count=1 -timeout 10m ./test/e2e $(PKGS)

check: static lint ## every static check: static's, then golangci-lint

static: ## gofmt, no pointer to outside documents, tidy modules, fuzz target list, go vet
	@bad=$$(gofmt -l streams pkg sdk/go services examples test); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@# The docs stand on their own: no tracked file may point at a design file outside the repository.
	@bad=$$(git grep -Iil -e 'design[.]md' -- .); if [ -n "$$bad" ]; then echo "these files mention a design document that is not in the repository (point at docs/ instead):"; echo "$$bad"; exit 1; fi
	@# Every module of go.work must be tidy (go.work.sum and tools/peers are not checked). With a
	@# warm module cache this needs no network (GOPROXY=off passes) and takes 1-1.6 s for the modules.
	@for m in $(MODULES); do \
		out=$$(cd $$m && $(GO) mod tidy -diff 2>&1) || { echo "module $$m is not tidy: run (cd $$m && go mod tidy)"; echo "$$out"; exit 1; }; \
	done
	@# Every fuzz target is listed in FUZZ_TARGETS, so that make fuzz and make fuzz-long run it.
	@missing=$$(git grep --untracked -o -e '^func Fuzz[A-Za-z0-9_]*' -- '*_test.go' | while IFS=: read -r file fn; do \
		t="./$$(dirname $$file):$${fn#func }"; case " $(FUZZ_TARGETS) " in *" $$t "*) ;; *) echo "$$t";; esac; done); \
		if [ -n "$$missing" ]; then echo "fuzz targets missing from FUZZ_TARGETS in the Makefile:"; echo "$$missing"; exit 1; fi
	$(GO) vet $(PKGS)

# Linters. go run pkg@version builds them from the Go module proxy into the build cache, so none
# of their dependencies reach natter's go.mod files. Measured on the project's 2-core machine under
# other sessions' load (load average 9-21, so wall times are 2-4x a quiet machine's; CPU seconds
# are user+sys), GOFLAGS=-modcacherw, each build in a fresh GOCACHE (and a fresh GOMODCACHE for
# make static and staticcheck; part of golangci-lint's modules were downloaded already):
#   make static (then named check) before staticcheck: cold 1605 s wall (downloading every module and compiling every
#     dependency for vet, at load 15-17); warm 7.8 s.
#   staticcheck v0.8.2: build 139 CPU s (242 s wall); first run over every module 158 CPU s
#     (361 s wall: it analyses every dependency once, then caches the facts); warm run 3.7 CPU s
#     (4.5 s wall).
#   golangci-lint v2.15.0: build 336 CPU s (734 s wall); first run with .golangci.yml 92 CPU s
#     (236 s wall); warm run 6.2 CPU s (21 s wall). A run with fewer linters needs the same build.
#   staticcheck v0.8.2 again on a quiet machine, build and run in an empty GOCACHE: 4 min 50 s wall,
#     558 CPU s (vet's compiled dependencies, which check would leave behind, were not there).
#   make test on a fresh clone with empty module and build caches, golangci-lint started beside
#     unit and e2e at nice 19 (session of 5 Dec 2026, load average 4-8): 1596 s wall, both cores
#     busy for all of it; there was no idle CPU for the linter to fill.
# New machine: staticcheck adds 297-558 CPU s, golangci-lint 428 or more; warm: 4.5 s against
# 21 s. make test is CI's command: on a new machine it takes 8.5-9 minutes quiet and 11 or more
# busy, so even staticcheck (2.5-5 minutes more) would take a busy run past the 15 minutes CI
# allows. So make check (static, then golangci-lint) runs the whole configuration (staticcheck,
# unused, errcheck, revive, ...) and finds nothing today, and make test runs static only: run
# make check before a change lands.
GOLANGCI_LINT_VERSION := v2.15.0
lint: ## golangci-lint (errcheck, govet, ineffassign, staticcheck, unused, revive)
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 10m $(UNIT_PKGS)

e2e:
	$(GO) test -race -count=1 -timeout 10m ./test/...

# The web client's script, services/web/static/app.js, is generated and committed, so that go build
# needs no JavaScript tools: esbuild (its Go API, in the test module) bundles services/web/src with
# the SDK's sources in sdk/js/src. test/browser's TestWebBundleIsUpToDate fails when the committed
# file differs from what the sources build to; this target rewrites it.
web: ## rebuild services/web/static/app.js from services/web/src and sdk/js/src
	$(GO) test -count=1 -run '^TestWebBundleIsUpToDate$$' ./test/browser -update

FUZZTIME ?= 30s
# package:target for every decoder of outside input: client frames, stream and store envelopes,
# store wire messages, push requests, state events, stored membership changes, bearer and refresh tokens, Origin and
# X-Forwarded-For headers, FCM's Retry-After, search queries and cursors, the analysis of message text. make static fails when a
# fuzz target is missing here.
FUZZ_TARGETS := ./services/bench:FuzzSortProfile ./sdk/go/protocol:FuzzDecode ./sdk/go/protocol:FuzzDecodeFrameFast ./sdk/go/protocol:FuzzEventJSON ./sdk/go/protocol:FuzzAckJSON ./streams:FuzzDecodeChatEvent ./streams:FuzzChatEventEncode ./streams:FuzzDecodeChatFast ./streams:FuzzDecodePushRequest ./streams:FuzzDecodeStateEvent ./streams:FuzzDecodeDelivery \
	./pkg/store/pebble:FuzzDecode ./pkg/store/remote:FuzzDecodeRequest ./pkg/store/remote:FuzzDecodeResponse \
	./pkg/timeline:FuzzDecodeMember ./pkg/auth:FuzzVerify ./pkg/origin:FuzzAllows \
	./pkg/clientaddr:FuzzKey ./services/push:FuzzRetryAfter ./pkg/auth:FuzzParseRefreshToken \
	./services/search:FuzzDecodeCursor ./services/search:FuzzDecodeMeta ./services/search:FuzzIndexingAnalyzer ./services/gateway:FuzzParsePubAck ./services/api:FuzzParseSearchQuery ./pkg/cputime:FuzzParseStat ./pkg/procstat:FuzzParse ./pkg/procstat:FuzzParseCalls
fuzz: ## run every fuzz target for FUZZTIME each (CI-sized: 30s each)
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} $${t##*:}"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

FUZZTIME_LONG ?= 10m
fuzz-long: ## every fuzz target for FUZZTIME_LONG each (10m: about 3 hours), on demand; see docs/security.md
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME_LONG)

test-invariant: ## the sync invariant test at a large size (200 users, 400 direct conversations, 40 groups)
	NATTER_INVARIANT=large $(GO) test -race -count=1 -timeout 30m -v -run TestSyncNeverSkipsUnderChurn ./test/invariant/

FAULT_CYCLES ?= 6
test-fault: ## the split-process fault test (3 NATS nodes, 2 gateways/fanouts/persisters) for FAULT_CYCLES kill cycles
	NATTER_FAULT_CYCLES=$(FAULT_CYCLES) $(GO) test -race -count=1 -timeout 60m -v -run TestFaultsLoseNoAcknowledgedMessage ./test/e2e/

SEARCH_BENCH_N ?= 1000000
bench-search: ## search: index SEARCH_BENCH_N messages through the search consumer, then query p50/p99 (see docs/performance.md)
	SEARCH_BENCH_N=$(SEARCH_BENCH_N) $(GO) test -count=1 -timeout 90m -run '^$$' -bench '^BenchmarkSearch$$' -benchtime 1x -v ./services/search/

bench-search-format: ## search: index format 1 against the current one, alternating: CPU per message indexed, late-joiner query latency, migration cost
	$(GO) test -count=1 -timeout 60m -run '^$$' -bench 'Formats|MigrateFormat1' -benchtime 1x -v ./services/search/

test-scylla: ## the Scylla store against NATTER_SCYLLA_HOSTS (see docs/operations.md)
	@test -n "$$NATTER_SCYLLA_HOSTS" || { echo "set NATTER_SCYLLA_HOSTS=host[,host...]"; exit 1; }
	$(GO) test -race -count=1 -timeout 30m ./pkg/store/scylla/...

BENCH_FLAGS ?= --users 200 --duration 5s --conns 8000
bench: build ## natter bench: 1:1, group and idle-memory load against raw baselines (see docs/performance.md)
	$(BIN) bench $(BENCH_FLAGS)

# Centrifugo, to measure natter against (docs/performance.md): built from the Go module proxy
# into bin/ from tools/peers, a module of its own outside go.work, so none of its dependencies
# reach natter's modules. The version is the one tools/peers/go.mod pins.
CENTRIFUGO_VERSION = $(shell awk '$$1 == "github.com/centrifugal/centrifugo/v6" {print $$2}' tools/peers/go.mod)
PEERS_FLAGS ?=
bench-peers: build bin/centrifugo ## natter against Centrifugo v6: alternating rounds, same load, same machine (about 5 minutes on 2 cores)
	$(BIN) bench peers --natter $(BIN) --centrifugo bin/centrifugo $(PEERS_FLAGS)

bench-floor: build bin/centrifugo ## what natter's parts cost beside Centrifugo: natter, without search, without search and persister (1:1 flat out and paced, about 9 minutes on 2 cores)
	$(BIN) bench peers --natter $(BIN) --centrifugo bin/centrifugo --scenario 1to1,paced --duration 10s \
		--natter-variant "no-search=--target gateway,api,persister,fanout,presence,push" \
		--natter-variant "delivery-only=--target gateway,api,fanout,presence,push" $(PEERS_FLAGS)

bin/centrifugo: tools/peers/go.mod tools/peers/go.sum
	cd tools/peers && GOWORK=off $(GO) build -ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$(CENTRIFUGO_VERSION:v%=%)" \
		-o ../../bin/centrifugo github.com/centrifugal/centrifugo/v6

clean:
	rm -rf bin
