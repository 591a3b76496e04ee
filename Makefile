# Shortcuts; the README's two commands need nothing but Go.
.PHONY: dev test race vet fmt build ci kafka-up kafka-down test-kafka interop pgo

dev:
	go run ./cmd/twosell dev

test:
	go test ./...

race:
	go test -race ./...

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

build:
	go build -o twosell ./cmd/twosell

ci:
	.ci/run

# The CPU profile go build optimizes twosell with (profile-guided
# optimization: cmd/twosell/default.pgo is used by go build, go run and go
# install by themselves). Taken from the bench: three cache-warm runs and
# one of paid calls only, merged. Take it again when the hot path changes.
pgo:
	d=$$(mktemp -d) && go build -pgo=off -o $$d/twosell ./cmd/twosell && \
	for i in 1 2 3; do \
		$$d/twosell bench --latency 20ms --distinct 100 --events 1000000 --rounds 1 --cpuprofile $$d/cache$$i.prof >/dev/null || exit 1; \
	done && \
	$$d/twosell bench --latency 0 --events 60000 --rounds 1 --cpuprofile $$d/paid.prof >/dev/null && \
	go tool pprof -proto $$d/cache1.prof $$d/cache2.prof $$d/cache3.prof $$d/paid.prof > cmd/twosell/default.pgo && \
	rm -rf $$d

# A real Apache Kafka on 127.0.0.1:$(KAFKA_PORT) (deploy/kafka-local).
KAFKA_PORT ?= 9092

kafka-up:
	deploy/kafka-local/start.sh $(KAFKA_PORT)

kafka-down:
	deploy/kafka-local/stop.sh

# The integration suite and the fault tests on the broker of kafka-up.
test-kafka:
	KAFKA_BROKERS=127.0.0.1:$(KAFKA_PORT) go test -count=1 ./processor/... ./cmd/...
	KAFKA_BROKERS=127.0.0.1:$(KAFKA_PORT) TWOSELLTEST_FAULT=1 TWOSELLTEST_BROKER_CONTROL=1 go test -count=1 -timeout 30m -run '^TestFault' ./cmd/twosell/

# kcat against twosell, on the broker of kafka-up and on twosell dev.
interop:
	deploy/interop/run.sh real 127.0.0.1:$(KAFKA_PORT)
	deploy/interop/run.sh dev
