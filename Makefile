# Shortcuts; the README's two commands need nothing but Go.
.PHONY: dev test race vet fmt build ci kafka-up kafka-down test-kafka interop

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
