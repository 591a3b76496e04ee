# Shortcuts; the README's two commands need nothing but Go.
.PHONY: dev test race vet fmt build ci

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
