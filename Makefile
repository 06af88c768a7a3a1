# deploybot: `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
VERSITYGW_VERSION := v1.8.0
STATICCHECK_VERSION := v0.8.2
HELM_VERSION := v3.22.0
# The GoReleaser of .github/workflows/release.yml (a packaging test holds them together).
GORELEASER_VERSION := v2.17.0
# Tests that need a real S3 server fail (rather than skip) under make.
export DEPLOYBOT_REQUIRE_VERSITYGW := 1
export VERSITYGW := $(GOBIN)/versitygw
export DEPLOYBOT_REQUIRE_HELM := 1
export HELM := $(GOBIN)/helm
# internal/cfnvalidate validates the CloudFormation template setup --output
# writes with Node.js (npm ci installs the CloudFormation resource spec);
# under make a missing node or npm fails that test rather than skipping it.
export DEPLOYBOT_REQUIRE_NODE := 1

.PHONY: help test test-short test-zones lint build build-image release-check fuzz reliability tools bench-publish bench-prune bench-answers bench-flipspeed bench-memory bench-slack clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

build: ## build ./deploybot (VERSION from git describe, shown by deploybot version)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X github.com/deploybot/deploybot/cli.Version=$(VERSION)" -o deploybot ./cmd/deploybot

build-image: ## build ./deploybot as the container image does: without dev and localaws (-tags nostandin)
	CGO_ENABLED=0 $(GO) build -trimpath -tags nostandin -ldflags "-s -w -X github.com/deploybot/deploybot/cli.Version=$(VERSION)" -o deploybot ./cmd/deploybot

release-check: $(GOBIN)/goreleaser ## check .goreleaser.yaml (what a tag publishes) and build it for this machine into dist/
	$(GOBIN)/goreleaser check
	$(GOBIN)/goreleaser build --snapshot --clean --single-target

tools: $(GOBIN)/versitygw $(GOBIN)/helm ## install what the tests need (versitygw, helm)

$(GOBIN)/versitygw:
	$(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(GOBIN)/helm:
	$(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(GOBIN)/goreleaser:
	$(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)

$(GOBIN)/staticcheck:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

test: tools ## every test, with the race detector (what CI runs)
	$(GO) vet ./...
	$(HELM) lint --strict charts/deploybot
	$(GO) test -race -count=1 -timeout 20m ./...

# Every fixture clock starts at a date derived from the wall clock
# (internal/testclock), so a test that mixes it with time.Now() fails the day
# it is written; these runs catch the other half, code or tests that assume
# the machine's zone is UTC: one zone fourteen hours ahead of UTC, one ten
# hours behind with daylight saving time.
test-zones: ## the tests in two far time zones (UTC+14 and UTC-10/-9)
	TZ=Pacific/Kiritimati $(GO) test -count=1 -timeout 20m ./...
	TZ=America/Adak $(GO) test -count=1 -timeout 20m ./...

test-short: ## the tests without the race detector, faster
	$(GO) test -count=1 ./...

lint: $(GOBIN)/staticcheck ## gofmt check, go vet (both builds), staticcheck, go mod tidy -diff
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags nostandin ./cli/ ./cmd/...
	$(GOBIN)/staticcheck ./...
	$(GO) mod tidy -diff

fuzz: ## run every fuzz target (found with go test -list) for a while (FUZZTIME=30s); see scripts/fuzz.sh
	GO=$(GO) FUZZTIME=$${FUZZTIME:-30s} sh scripts/fuzz.sh

reliability: ## long reliability suite (10,000 page loads, kill -9, faults, 30 s per fuzz target); writes docs/reliability.md
	$(GO) run ./bench/reliability -out docs/reliability.md

bench-publish: tools ## publish 2,000 files next to a PutObject loop, rclone and aws s3 sync (installs them)
	$(GO) run ./bench/publish

bench-prune: tools ## prune 100,000 objects on versitygw, next to rclone purge (installs it)
	$(GO) run ./bench/prune

bench-answers: ## versions (from the store) next to status and a sync, at 1,000 and 3,000 releases
	$(GO) run ./bench/answers

bench-coordination: ## what sharing locks, freezes, pins and approvals through the bucket adds to a promote, and costs an idle site
	$(GO) run ./bench/coordination

bench-slack: ## Slack calls at a busy team's scale (fake Slack): a promote with 300 kept notices, a prune of 300, a 429 storm (some 5 minutes)
	$(GO) run ./bench/slack

bench-flipspeed: ## a rollback on both strategies at CloudFront's pace scaled 1:20: time to every PoP, deploybot's added time per phase, API calls
	$(GO) run ./bench/flipspeed

bench-memory: ## serve's peak RSS while reconcile reads 20 manifests of 46 MB and 8 diffs of them run through the API
	$(GO) run ./bench/memory

clean: ## remove build output
	rm -f deploybot
	rm -rf dist
