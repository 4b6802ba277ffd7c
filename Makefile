# Vigil — run `make help` for the targets.
# sudo often drops /usr/local/go/bin from PATH.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
PKGS      ?= ./...
BENCHTIME ?= 1s
FUZZTIME  ?= 30s
BIN       := bin/vigil

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/vigil
	$(GO) build -o $(BIN) ./cmd/vigil

.PHONY: demo
demo: build ## Run Vigil's main job end to end (root): agent, container namespace, learn, seal, forensics, metrics, verified log
	VIGIL=$(BIN) bash test/demo/demo.sh

.PHONY: lint
lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: unit
unit: ## go test ./... (kernel tests run when root, skip with a reason otherwise)
	$(GO) test -count=1 $(PKGS)

.PHONY: deps
deps: ## Install the test tools beyond Go and gcc when missing (promtool, qemu, the VM kernel, podman, runc, docker.io, busybox-static; root)
	GO=$(GO) bash test/deps.sh

.PHONY: test
test: deps lint unit vmtest ## Everything CI runs: lint, unit + host kernel tests, VM (BPF LSM) tests

.PHONY: vmtest
VMPKGS ?= ./test/vm/lsmprobe ./test/vm/guest ./bpf ./test/vmagent ./test/vmrun

vmtest: ## Boot Debian's cloud kernel under qemu with the BPF LSM and run the LSM tests there
	GO=$(GO) bash test/vm/ci-deps.sh
	$(GO) run ./test/vm -bin ./cmd/vigil -- $(VMPKGS)

BPF_APT := clang llvm libbpf-dev bpftool

.PHONY: bpf-deps
bpf-deps: ## Install what regenerating the eBPF objects needs (Debian, root)
	@command -v clang >/dev/null && command -v bpftool >/dev/null && test -f /usr/include/bpf/bpf_helpers.h || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BPF_APT); }

.PHONY: generate
generate: bpf-deps ## Regenerate the committed eBPF objects (bpf2go) from bpf/*.c and bpf/headers
	$(GO) generate ./bpf/...

.PHONY: generate-headers
generate-headers: bpf-deps ## Regenerate bpf/headers (vmlinux.h from this kernel's BTF, libbpf headers), then the objects
	bpf/headers/update.sh
	$(GO) generate ./bpf/...

.PHONY: bench
bench: ## Run the benchmarks (numbers go in docs/performance.md)
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS)

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: clean
clean: ## Remove build output
	rm -rf bin
