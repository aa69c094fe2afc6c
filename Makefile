# entra-operator: the two commands a new user needs are `make demo` and `make test`.
# Everything the tests need is built here from the project's own files; nothing is installed by hand.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

KUBE_VERSION := v1.36.3
KUBE_MINOR := 36
HELM_VERSION := v4.3.1

# The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK, kubectl) is one Go binary built
# from Kubernetes' published modules; helm is built from Helm's. Both land under target/ and are
# rebuilt only when their Go module files change.
CONTROLPLANE_DIR := tests/controlplane
CONTROLPLANE_BIN := target/controlplane/controlplane
CONTROLPLANE_SRC := $(wildcard $(CONTROLPLANE_DIR)/*.go) $(CONTROLPLANE_DIR)/go.mod $(CONTROLPLANE_DIR)/go.sum
HELM_DIR := tests/helm
HELM_BIN := target/controlplane/helm
PROMTOOL_DIR := tests/promtool
PROMTOOL_BIN := target/controlplane/promtool
# The bench's peer, External Secrets Operator, built from its Go module with its release's CRDs.
PEER_DIR := tests/peer
ESO_BIN := target/controlplane/eso
ESO_CRDS := target/controlplane/eso-crds.yaml

GO_ENV := GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
KUBE_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=$(KUBE_MINOR) \
	-X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 \
	-X k8s.io/client-go/pkg/version.gitMinor=$(KUBE_MINOR)

export CONTROLPLANE_BIN := $(abspath $(CONTROLPLANE_BIN))
export HELM_BIN := $(abspath $(HELM_BIN))
export PROMTOOL_BIN := $(abspath $(PROMTOOL_BIN))
export ESO_BIN := $(abspath $(ESO_BIN))
export ESO_CRDS := $(abspath $(ESO_CRDS))

# The operator image: the Dockerfile, with Docker or Podman, whichever engine answers.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE ?= ghcr.io/hanzoai/entra-operator:$(VERSION)

.PHONY: help
help:
	@echo "make demo   run the operator end to end on a local control plane and Entra emulator"
	@echo "make test   format and lint checks, unit tests and integration tests"
	@echo "make crds   regenerate crds/ (and the chart's copy, which templates/crds.yaml renders) from the Rust types"
	@echo "make chart-docs  regenerate the chart's README.md and schema descriptions from values.yaml"
	@echo "make image  build the operator image with Docker or Podman"
	@echo "make bench  measure the operator (release build); writes bench/results.md and results.json"
	@echo "make bench-peer  the operator beside External Secrets Operator; the peer table of results.md"
	@echo "make chaos  fault-injection scenarios checking the invariants (release build)"

.PHONY: demo
demo: $(CONTROLPLANE_BIN)
	@echo ">> building the operator and the demo"
	cargo build --bin entra-operator --bin kubectl-entra --example demo
	cargo run --quiet --example demo

.PHONY: controlplane
controlplane: $(CONTROLPLANE_BIN)

$(CONTROLPLANE_BIN): $(CONTROLPLANE_SRC)
	@echo ">> building the local control plane (Kubernetes $(KUBE_VERSION)) from Go modules"
	@echo "   the first build takes about 6 minutes on 2 cores; later runs reuse it and the Go build cache"
	@mkdir -p $(dir $@)
	cd $(CONTROLPLANE_DIR) && $(GO_ENV) go build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $(abspath $@) .
	@echo ">> control plane built: $$($@ kube-apiserver --version)"

.PHONY: helm
helm: $(HELM_BIN)

$(HELM_BIN): $(HELM_DIR)/go.mod $(HELM_DIR)/go.sum
	@echo ">> building helm $(HELM_VERSION) from its Go module (later runs reuse it)"
	@mkdir -p $(dir $@)
	cd $(HELM_DIR) && $(GO_ENV) go build -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" \
		-o $(abspath $@) helm.sh/helm/v4/cmd/helm

# promtool, to check that /metrics is valid Prometheus exposition.
$(PROMTOOL_BIN): $(PROMTOOL_DIR)/go.mod $(PROMTOOL_DIR)/go.sum
	@echo ">> building promtool from the Prometheus Go module (later runs reuse it)"
	@mkdir -p $(dir $@)
	cd $(PROMTOOL_DIR) && $(GO_ENV) go build -trimpath -ldflags "-s -w" \
		-o $(abspath $@) github.com/prometheus/prometheus/cmd/promtool

.PHONY: crds
crds:
	cargo run --quiet -- crds > crds/entra-operator.yaml
	cp crds/entra-operator.yaml charts/entra-operator/files/crds.yaml

.PHONY: image
image:
	@engine=""; \
	for candidate in docker podman; do \
		if command -v $$candidate >/dev/null 2>&1 && $$candidate info >/dev/null 2>&1; then engine=$$candidate; break; fi; \
	done; \
	if [ -z "$$engine" ]; then \
		echo "make image: no container engine answers here: neither 'docker info' nor 'podman info' succeeds." >&2; \
		echo "Start Docker or install Podman, or build elsewhere with: docker build -t $(IMAGE) ." >&2; \
		exit 1; \
	fi; \
	echo ">> building $(IMAGE) with $$engine"; \
	$$engine build -t $(IMAGE) .

# The chart's README.md and its schema's descriptions, from the `# --` comments of values.yaml.
.PHONY: chart-docs
chart-docs:
	cargo run --quiet -p entra-test-support --bin chart-docs

.PHONY: lint
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: test
test: lint $(CONTROLPLANE_BIN) $(HELM_BIN) $(PROMTOOL_BIN)
	@echo ">> unit and integration tests; integration tests start $$($(CONTROLPLANE_BIN) kube-apiserver --version) on loopback"
	cargo test --workspace --no-fail-fast -- --show-output

# The harness (bench/) drives the release operator binary beside it in target/release; one cargo
# invocation, so that both are built with the same dependency features.
.PHONY: bench-build
bench-build:
	cargo build --release -p entra-operator -p entra-bench

# The peer comparison runs too once `make bench-peer` has built ESO (its first build takes about
# 25 minutes on 2 cores). Both render the chart's finalizer policy with helm.
.PHONY: bench
bench: $(CONTROLPLANE_BIN) $(HELM_BIN) bench-build
	target/release/bench
	@if [ -x $(ESO_BIN) ] && [ -f $(ESO_CRDS) ]; then target/release/peer; \
	else echo ">> no peer comparison: make bench-peer builds External Secrets Operator and runs it"; fi

.PHONY: bench-peer
bench-peer: $(CONTROLPLANE_BIN) $(HELM_BIN) $(ESO_BIN) bench-build
	target/release/peer

$(ESO_BIN): $(PEER_DIR)/go.mod $(PEER_DIR)/go.sum $(PEER_DIR)/main.go
	@echo ">> building External Secrets Operator from its Go module (later runs reuse it)"
	@mkdir -p $(dir $@)
	cd $(PEER_DIR) && $(GO_ENV) go build -trimpath -ldflags "-s -w" -o $(abspath $@) .
	install -m 0644 "$$(cd $(PEER_DIR) && $(GO_ENV) go list -m -f '{{.Dir}}' github.com/external-secrets/external-secrets)/deploy/crds/bundle.yaml" $(ESO_CRDS)

.PHONY: chaos
chaos: $(CONTROLPLANE_BIN) bench-build
	target/release/chaos
