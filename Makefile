# sendcore — build, test, lint, bench, demo. See README.md.
GO            ?= go
GOLANGCI      ?= github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)
FUZZTIME      ?= 10s
TESTTIMEOUT   ?= 20m

.PHONY: all build test test-short lint fmt bench fuzz demo run clean

all: build

build: ## the sendcore binary in ./bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/sendcore ./cmd/sendcore

test: ## the whole suite, race detector on
	$(GO) test -race -timeout $(TESTTIMEOUT) ./...

test-short:
	$(GO) test -race -short ./...

lint: ## go vet, gofmt check, golangci-lint (pinned, run through go run)
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) run $(GOLANGCI) run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

bench: ## every benchmark behind a performance goal; regenerates BENCHMARKS.md (15-30 min)
	.ci/benchmarks BENCHMARKS.md

fuzz: ## every fuzz target, briefly (FUZZTIME each)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

demo: ## everything embedded on loopback, a sample campaign, a summary
	$(GO) run ./cmd/sendcore demo

run: ## the gateway on config.yaml if present, else embedded defaults
	$(GO) run ./cmd/sendcore run $$( [ -f config.yaml ] && echo --config config.yaml )

clean:
	rm -rf bin data bench-*.json bench-*.txt bench-*.svg
