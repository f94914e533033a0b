# Glimpse — make run | make test | make bench
#
#   make run     build, start a private ClickHouse (if none answers), fetch the
#                demo geo database, write a demo glimpse.yaml, migrate, serve
#   make test    gofmt/vet, unit tests, integration tests on a private
#                ClickHouse (started and stopped by PID if none was running)
#   make bench   benchmarks (ratios against a baseline in the same run)
#   make fuzz    every fuzz target, FUZZ_EXECS (200000) executions each
#   make cluster-start|cluster-stop   a local ClickHouse cluster (scripts/cluster)
#   make update-lists  regenerate the bot patterns and the source table from
#                npm (isbot, crawler-user-agents, referer-parser); needs network

SHELL := /bin/bash
GO ?= go
GLIMPSE_CH_PORT ?= 9000
export GLIMPSE_CH_PORT
LISTEN ?= 127.0.0.1:8080
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test check unit integration bench bench-floor fuzz update-lists clickhouse-start clickhouse-stop cluster-start cluster-stop clean

build:
	@scripts/ensure-go
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/glimpse ./cmd/glimpse

run: build
	@scripts/clickhouse start
	@geo=$$(scripts/geoip) && \
	if [ ! -f glimpse.yaml ]; then cp scripts/demo.yaml glimpse.yaml && echo "wrote demo glimpse.yaml"; fi && \
	site=$$(sed -n 's/^  - domain: *//p' glimpse.yaml | head -1) && \
	n=$$(clickhouse-client --port $(GLIMPSE_CH_PORT) -q "SELECT count() FROM glimpse.events WHERE site_id = '$$site'" 2>/dev/null || echo 0) && \
	if [ "$$n" = 0 ]; then bin/glimpse seed --clickhouse clickhouse://127.0.0.1:$(GLIMPSE_CH_PORT)/glimpse --site "$$site" --events 100000 --days 60 --log-level warn; fi && \
	echo "" && \
	echo "  dashboard:  http://$(LISTEN)/dashboard/   sign in: demo@glimpse.localhost / glimpse-demo (scripts/demo.yaml)" && \
	echo "  shared:     http://$(LISTEN)/dashboard/site?site=demo.glimpse.localhost&auth=demo-shared-link-0123456789" && \
	echo "  demo site:  http://$(LISTEN)/demo/" && \
	echo "  opt-out:    http://$(LISTEN)/optout" && \
	echo "  health:     http://$(LISTEN)/healthz   readiness: http://$(LISTEN)/readyz" && \
	echo "  metrics:    http://$(LISTEN)/metrics" && \
	echo "  stats API:  curl -H 'Authorization: Bearer demo-key' 'http://$(LISTEN)/api/v1/stats/aggregate?site_id=demo.glimpse.localhost&metrics=visitors,pageviews'" && \
	echo "" && \
	exec bin/glimpse serve --config glimpse.yaml --listen $(LISTEN) \
		--clickhouse clickhouse://127.0.0.1:$(GLIMPSE_CH_PORT)/glimpse --geoip "$$geo" --spool-dir .spool --demo

test:
	@scripts/test

bench:
	@scripts/bench

bench-floor:
	@scripts/bench-floor

fuzz:
	@scripts/fuzz

# Refresh the generated lists (bots_gen.go, sources_gen.txt, their test
# corpora and licences) from npm, then check them against the corpora.
update-lists:
	@scripts/ensure-go
	cd collector/agent && $(GO) generate
	cd collector/enrich && $(GO) generate
	set -o pipefail; $(GO) test -count=1 -run 'TestBot|TestSources|TestUAParse|TestClassifyReferrer' -v ./collector/agent/ ./collector/enrich/ | grep -E 'recall|false positives|domains|^(ok|FAIL|---)'
	@git status --short collector/agent collector/enrich

clickhouse-start:
	@scripts/clickhouse start

clickhouse-stop:
	@scripts/clickhouse stop

clean:
	rm -rf bin .bench

cluster-start:
	@scripts/cluster start

cluster-stop:
	@scripts/cluster stop
