# `make help` lists the targets. `make check` is what a change must pass.

GO ?= go
GOFMT ?= gofmt
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := build
.PHONY: build batteries gotools demo test testdeps short check bench bench-peers bench-gotest bench-toolexec bench-gocache bench-allocs fuzz clean help toolbox toolbox-relock ci-demo wasi-testsuite

# The batteries (tools/batteries/NAME): wasm commands shipped beside
# bin/spindle in bin/batteries/, run by its thin verbs (spindle sh, facts,
# stat, copy). build pins each by its sha256 in bin/spindle
# (main.batteryPins), so a spindle refuses a battery it was not built with.
BATTERIES := sh facts stat copy
# The batteries that are reactors (guest-sdk tasks, -buildmode=c-shared);
# the others are WASI commands.
BATTERY_REACTORS := facts stat

# Every broker is static (CGO_ENABLED=0), bin/spindle too, whose local
# children are copies of it: a static binary starts in about 60% of the CPU
# time of a cgo one (no dynamic loader, no C runtime), which is most of a
# local spawn, and names the machine's LDAP or SSSD users through getent
# (userdb.go) as a cgo build would.
build: batteries ## build bin/spindle (its batteries pinned), and the linux/amd64 and linux/arm64 brokers it ships to remote hosts
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.batteryPins=$$(cd bin/batteries && for b in $(BATTERIES); do \
		printf '%s=%s,' $$b $$(sha256sum $$b.wasm | cut -d' ' -f1); done)" -o bin/spindle ./tools/spindle
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o bin/spindle-linux-amd64 ./tools/spindle
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o bin/spindle-linux-arm64 ./tools/spindle

demo: build wasm-go ## build, then start a local tree and run the example wasm tasks across it (Go guests only: no clang needed)
	./bin/spindle tree
	./bin/spindle run -t local:w1 -t local:w2 -t local:w3/local:w3.sub bin/wasm/hello.wasm hello --input '{"name": "spindle"}'
	./bin/spindle run -t local:hasher --mount examples/wasm:/data:ro bin/wasm/hasher.wasm hash --input '{"path": "/data/README.md"}'
	echo "spindle" | ./bin/spindle run bin/wasm/cmd.wasm --stdin - --env GREETING=hi -- one two; echo "(command exit status $$?: its number of arguments)"
	./bin/spindle run -t local:a -t local:b bin/wasm/bad.wasm loop --timeout 300ms || echo "(a looping guest is stopped at its time limit: exit status $$?)"

test: testdeps ## all tests, with the race detector (as root: installs what they need first)
	$(GO) test -race -count=1 -timeout 30m ./...

testdeps: ## install what make test needs (root, apt-get), or say the one command to run
	@tools/testdeps.sh ensure

short: ## the quick tests only (-short), with the race detector
	$(GO) test -short -race ./...

check: ## gofmt, vet, staticcheck, make test, make bench-allocs, and a tidy go.mod (the toolbox module's too)
	@out="$$($(GOFMT) -l .)"; if [ -n "$$out" ]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./guest-sdk/... ./examples/wasm/...
	$(STATICCHECK) ./...
	$(MAKE) test
	$(MAKE) bench-allocs
	$(GO) mod tidy
	@if [ -n "$$(git status --porcelain go.mod go.sum)" ]; then \
		echo "go.mod/go.sum are not tidy (or not committed):"; \
		git status --porcelain go.mod go.sum; git --no-pager diff go.mod go.sum; exit 1; fi
	cd tools/toolbox && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -race ./... && GOWORK=off $(GO) mod tidy
	@if [ -n "$$(git status --porcelain tools/toolbox/go.mod tools/toolbox/go.sum)" ]; then \
		echo "tools/toolbox/go.mod/go.sum are not tidy (or not committed):"; \
		git --no-pager diff tools/toolbox/go.mod tools/toolbox/go.sum; exit 1; fi

bench: build wasm-go ## build, then run the benchmarks: ./bin/spindle bench
	./bin/spindle bench

bench-peers: build wasm-go ## the benchmarks beside Mitogen's same operations, with the ratios (needs python3-mitogen): ./bin/spindle bench --peers
	./bin/spindle bench --peers

bench-gotest: build ## wasip1 go test of 12 std packages through spindle exec: 1 vs 3 local contexts, beside wazero's CLI and native go test (about 1.5 min)
	tools/benchgotest.sh

bench-toolexec: build gotools ## go install of gojq with every compile/asm/link through spindle toolexec (granted, shipped, 1 vs 3 contexts, unchanged) against native, sha256 checked (about 8 min)
	tools/benchtoolexec.sh

bench-gocache: build ## go install of gojq with spindle gocache as GOCACHEPROG (empty, unchanged, a new machine served by a context) against go's own cache, sha256 checked (about 2 min)
	tools/benchgocache.sh

# The hot paths' allocations per operation (go test -bench at fixed
# iteration counts) against docs/bench-allocs.txt; times are printed, never
# compared. After a change that adds or removes allocations on purpose:
# $(GO) run ./tools/benchallocs -update, and commit the file.
bench-allocs: ## check the hot-path benchmarks' allocs/op against docs/bench-allocs.txt (not times; about 10 s)
	$(GO) run ./tools/benchallocs -go $(GO)

# The WebAssembly/wasi-testsuite's wasip1 tests (prebuilt, pinned: see its
# PROVENANCE.md) through bin/spindle run, with the suite runner's semantics
# (tools/wasitest). SUITE=DIR points at another checkout; by default it is
# ../shared/wasi-testsuite beside this checkout (or beside the main checkout
# of a worktree, or the origin of a local clone). Known failures, each with
# its reason: tools/wasitest/known-failures.txt.
SUITE ?=
wasi-testsuite: build ## run the wasi-testsuite's wasip1 tests through bin/spindle run (SUITE=DIR; default ../shared/wasi-testsuite)
	$(GO) run ./tools/wasitest -spindle bin/spindle $(if $(SUITE),-suite $(SUITE))

fuzz: ## fuzz the frame decoder for 30s
	$(GO) test -run XXX -fuzz FuzzDecode -fuzztime 30s ./wire/

# The toolbox (tools/toolbox): pinned Go tools built as wasip1 commands for
# CI steps, NAME=PACKAGE at the versions tools/toolbox/go.mod requires
# (gofmt from GOROOT). lockgen builds them into bin/toolbox/NAME.wasm and
# writes bin/toolbox/toolbox.lock, after checking their hashes against
# tools/toolbox/expected.lock; it builds nothing when the lock is up to date.
TOOLBOX := gofmt=cmd/gofmt gofumpt=mvdan.cc/gofumpt shfmt=mvdan.cc/sh/v3/cmd/shfmt \
	gojq=github.com/itchyny/gojq/cmd/gojq actionlint=github.com/rhysd/actionlint/cmd/actionlint \
	jsonnet=github.com/google/go-jsonnet/cmd/jsonnet
TOOLBOX_LOCKGEN = cd tools/toolbox && GOWORK=off GOFLAGS= $(GO) run ./lockgen -out ../../bin/toolbox

toolbox: ## build the CI tools (gofmt, gofumpt, shfmt, gojq, actionlint, jsonnet) for wasip1 into bin/toolbox/, checked against tools/toolbox/expected.lock
	$(TOOLBOX_LOCKGEN) $(TOOLBOX)

toolbox-relock: ## build the toolbox and record its hashes in tools/toolbox/expected.lock (after changing tools/toolbox/go.mod or Go)
	$(TOOLBOX_LOCKGEN) -relock $(TOOLBOX)

clean: ## remove bin/
	rm -rf bin

help: ## list the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

batteries: ## build the batteries (tools/batteries/*) into bin/batteries/NAME.wasm
	@mkdir -p bin/batteries
	@set -e; for b in $(BATTERIES); do mode=; kind=command; \
		case " $(BATTERY_REACTORS) " in *" $$b "*) mode=-buildmode=c-shared; kind=reactor;; esac; \
		echo "battery: $$b ($$kind)"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath $$mode -o bin/batteries/$$b.wasm ./tools/batteries/$$b; done

# The Go toolchain as wasm, for spindle toolexec (go build -toolexec): this
# Go's compile, asm and link built for wasip1 from its GOROOT, and VERSION,
# the Go version they belong to (spindle toolexec refuses tools of another).
# About two minutes the first time; nothing when VERSION matches.
GOTOOLS := compile asm link
gotools: ## build this Go's compile, asm and link for wasip1 into bin/gotools/, for spindle toolexec
	@mkdir -p bin/gotools
	@v="$$($(GO) env GOVERSION)"; \
	if [ "$$(cat bin/gotools/VERSION 2>/dev/null)" = "$$v" ] && \
		for t in $(GOTOOLS); do [ -f bin/gotools/$$t.wasm ] || exit 1; done; then \
		echo "gotools: bin/gotools is $$v"; exit 0; fi; \
	rm -f bin/gotools/VERSION; \
	set -e; for t in $(GOTOOLS); do echo "gotools: $$t ($$v, wasip1)"; \
		GOOS=wasip1 GOARCH=wasm GOFLAGS= $(GO) build -trimpath -o bin/gotools/$$t.wasm cmd/$$t; done; \
	echo "$$v" > bin/gotools/VERSION

# The wasm examples (examples/wasm/README.md): Go reactors, the Go command
# and the C reactors. WASM_CFLAGS match testutil.CFlags: freestanding, so
# clang and lld are all the C guests need (no wasi-libc).
WASM_GO_REACTORS := hello hasher progress bad
WASM_GO_COMMANDS := cmd ciprobe
WASM_C := c-hello c-bad
CLANG ?= clang
WASM_CFLAGS := --target=wasm32-wasi -ffreestanding -nostdlibinc -mexec-model=reactor -nostdlib \
	-O2 -Wall -Wextra -Werror -Wl,--no-entry

.PHONY: wasm wasm-go wasm-c
wasm: wasm-go wasm-c ## build examples/wasm/* into bin/wasm/<name>.wasm (the C ones need clang and lld)

wasm-go: ## build the Go example guests only (Go is all they need)
	@mkdir -p bin/wasm
	@set -e; for d in $(WASM_GO_REACTORS); do echo "wasm: $$d (reactor)"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/wasm/$$d.wasm ./examples/wasm/$$d; done
	@set -e; for d in $(WASM_GO_COMMANDS); do echo "wasm: $$d (command)"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -o bin/wasm/$$d.wasm ./examples/wasm/$$d; done

wasm-c: ## build the C example guests (needs clang and lld: apt-get install clang lld)
	@command -v $(CLANG) >/dev/null && command -v wasm-ld >/dev/null || \
		{ echo "make wasm-c: the C guests need clang and lld; run: apt-get install -y clang lld"; exit 1; }
	@mkdir -p bin/wasm
	@set -e; for d in $(WASM_C); do echo "wasm: $$d (C reactor)"; \
		$(CLANG) $(WASM_CFLAGS) -o bin/wasm/$$d.wasm examples/wasm/$$d/*.c; done

ci-demo: build wasm-go toolbox ## run ci/spindle.yaml (this repository checked by the toolbox) on a two-level local tree, twice: the second run is all cache hits
	./bin/spindle ci ci/spindle.yaml
	./bin/spindle ci ci/spindle.yaml
