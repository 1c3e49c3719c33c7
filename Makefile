# corsmesh: a Kubernetes mutating webhook that injects a CORS proxy sidecar.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

BIN      ?= bin
GO       ?= go
BINARIES := corsproxy corsproxy-init corsmesh-webhook corsmeshctl
LDFLAGS  := -s -w
# How much each fuzz target runs in `make test`: a count, not a duration, because Go 1.26's
# fuzz coordinator can fail a duration-bounded run with a spurious "context deadline
# exceeded" on a busy machine (go.dev/issue/75804, fixed in Go 1.27). By hand: make fuzz FUZZTIME=5m
DEFAULT_FUZZTIME := 30000x
FUZZTIME ?= $(DEFAULT_FUZZTIME)
# A target may carry its own count (pkg:Name:count): FuzzForward's inputs each cross two
# real connections, so fewer of them fit the same time.
FUZZ_TARGETS := ./corsproxy/config:FuzzParse ./corsproxy/config:FuzzWildcard ./corsproxy/cors:FuzzDecide ./corsproxy/proxy:FuzzForward:5000x ./webhook/slim:FuzzDecodePod ./webhook/admit:FuzzAppendJSONString
# The real control plane (kube-apiserver, etcd, kube-controller-manager, kubectl),
# built once per machine from the Go module proxy and cached under bin/k8s/.
export KUBEBUILDER_ASSETS ?= $(CURDIR)/bin/k8s/v1.37.2
ARGS ?=
# Tag of the release images (manifests/base and the injector's defaults name v0.1.0).
VERSION ?= v0.1.0
# The image builder: its own module, run from the repository root's paths.
IMAGES := $(GO) -C hack/images run . --repo $(CURDIR) --out $(CURDIR)/$(BIN)/images --version $(VERSION)

.PHONY: all build images sandbox-images images-lock images-test controlplane generate verify-generate test unit fuzz lint bench bench-smoke bench-proxy demo clean chart-test chart-sync actionlint helm

all: build

## build: every binary into bin/
build:
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do \
		echo "==> $(BIN)/$$b"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags="$(LDFLAGS)" -o $(BIN)/$$b ./cmd/$$b; \
	done
	@$(GO) -C test build -o $(CURDIR)/$(BIN)/pipyok ./pipyok

## images: OCI image archives of corsproxy, corsproxy-init, corsmesh-webhook in bin/images/ (no Docker)
images:
	@$(IMAGES) --set release

## sandbox-images: the sandbox cluster's images (pause, curl, pipy stand-in, CoreDNS) in bin/images/sandbox/
sandbox-images:
	@$(IMAGES) --set sandbox

## images-lock: pin the Debian packages the images take files from at their current versions
images-lock:
	@$(IMAGES) --update-lock

## images-test: the image builder's tests (two builds, equal digests; the archive format)
images-test:
	cd hack/images && $(GO) vet ./... && $(GO) test -count=1 -timeout 30m ./...

## controlplane: build kube-apiserver, etcd, kube-controller-manager, kubectl (cached)
controlplane:
	@./hack/build-controlplane.sh >/dev/null

## generate: deepcopy code and CRDs from injector/api
generate:
	./hack/generate.sh
	@$(MAKE) --no-print-directory chart-sync

verify-generate:
	./hack/generate.sh --check

## test: everything CI runs: lint, generated files, unit, integration and e2e tests, fuzzing
test: lint verify-generate controlplane helm images sandbox-images unit images-test fuzz bench-smoke chart-test actionlint

# The product's packages, the test harness's (test/: a module of its own), and the webhook
# load driver's (hack/bench/webhook: its statistics).
unit:
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) -C test test -count=1 -timeout 30m ./...
	$(GO) -C hack/bench/webhook test -count=1 ./...

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		IFS=: read -r pkg name count <<< "$$t"; \
		time=$${count:-$(FUZZTIME)}; [ "$(FUZZTIME)" = "$(DEFAULT_FUZZTIME)" ] || time=$(FUZZTIME); \
		echo "==> fuzz $$pkg $$name ($$time)"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$$time $$pkg; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) -C test vet ./...
	$(GO) -C hack/bench/webhook vet ./...

## chart-test: the Helm chart renders the default overlay's objects, helm lint --strict, its values
# (hack/release: a module of its own, so Helm's and kustomize's dependencies stay out of go.mod)
chart-test:
	$(GO) -C hack/release vet ./...
	$(GO) -C hack/release test -count=1 ./...

## helm: the helm CLI at the version pinned in hack/release, into bin/ (test/helm installs the chart with it)
helm:
	@mkdir -p $(BIN)
	$(GO) -C hack/release build -o $(CURDIR)/$(BIN)/helm helm.sh/helm/v4/cmd/helm

## chart-sync: rewrite the chart's generated files (crds/, templates/rbac.yaml) from manifests/ (make generate runs it)
chart-sync:
	$(GO) -C hack/release run ./cmd/chart-sync -repo $(CURDIR)

## actionlint: lint .github/workflows (actionlint pinned in hack/release; uses shellcheck if installed)
actionlint:
	@mkdir -p $(BIN)
	$(GO) -C hack/release build -o $(CURDIR)/$(BIN)/actionlint github.com/rhysd/actionlint/cmd/actionlint
	$(BIN)/actionlint -color=false

## bench: Go benchmarks of the CORS decision, the proxy and the admission handler
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./corsproxy/... ./injector/... ./webhook/...

## demo: the guide's shell blocks verbatim on the sandbox's node (make demo ARGS=--keep leaves it running)
# As root it also builds the images the node runs; without root the demo runs the proxy on loopback.
DEMO_DEPS := build controlplane
ifeq ($(shell id -u),0)
DEMO_DEPS += images sandbox-images
endif
demo: $(DEMO_DEPS)
	$(GO) -C test run ./demo --bin $(CURDIR)/$(BIN) $(ARGS)

## bench-smoke: every Go benchmark and both load drivers once, tiny, so they keep working (in make test)
bench-smoke: controlplane
	$(GO) test -count=1 -run='^$$' -bench=. -benchtime=1x ./corsproxy/... ./injector/... ./webhook/...
	$(GO) -C hack/bench/webhook run . --pods 10 --services 100 --chains 10 --batch 5 --warmup 2 \
		--handler-bench=false --out "" --quiesce 0s --sustained 1s >/dev/null
	@if [ "$${CI:-}" != true ] && [ "$$(id -u)" != 0 ] && ! { command -v wrk && command -v nginx; } >/dev/null 2>&1; then \
		echo "==> SKIP hack/bench/proxy.sh smoke: wrk or nginx missing, and not root to install them (it runs under CI=true)"; \
	else \
		echo "==> hack/bench/proxy.sh smoke"; \
		out=$$(mktemp -d); \
		ROUNDS=1 DURATION=1s WARMUP=1s PROFILE=1 CONTENDERS="direct corsproxy nginx rscors evloop" RESULTS_DIR=$$out \
			./hack/bench/proxy.sh >/dev/null; \
		rm -rf "$$out"; \
	fi

## bench-proxy: corsproxy vs nginx vs net/http+rs/cors, each on one core (see hack/bench/proxy.sh)
bench-proxy:
	./hack/bench/proxy.sh

clean:
	rm -rf $(BIN)
