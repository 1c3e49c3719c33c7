# corsmesh: a Kubernetes mutating webhook that injects a CORS proxy sidecar.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

BIN      ?= bin
GO       ?= go
BINARIES := corsproxy
LDFLAGS  := -s -w
# How long each fuzz target runs in `make test`; run longer by hand with `make fuzz FUZZTIME=5m`.
FUZZTIME ?= 5s
FUZZ_TARGETS := ./corsproxy/config:FuzzParse ./corsproxy/cors:FuzzDecide

.PHONY: all build test unit fuzz lint bench demo clean

all: build

build:
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do \
		echo "==> $(BIN)/$$b"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags="$(LDFLAGS)" -o $(BIN)/$$b ./cmd/$$b; \
	done

## test: everything CI runs: lint, unit and integration tests, brief fuzzing.
test: lint unit fuzz

unit:
	$(GO) test -count=1 ./...

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "==> fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./corsproxy/...

demo:
	./hack/demo-proxy.sh

clean:
	rm -rf $(BIN)
