# secure-defaults: every developer and CI entry point.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build release run test unit e2e lint fmt golden bench fuzz image clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release --locked

## run: the webhook on the embedded default config with a self-signed dev certificate.
## A debug build (the dev profile, shared with `make unit`): it compiles in a
## fraction of the time of the release profile (thin LTO, one codegen unit),
## which stays for `make release`, `make bench` and the image.
LISTEN ?= 127.0.0.1:8443
ADMIN_LISTEN ?= 127.0.0.1:8080
run:
	$(CARGO) run --locked -- serve --self-signed \
		--listen $(LISTEN) --admin-listen $(ADMIN_LISTEN) --ca-out target/dev-ca.pem

## test: every test the project has: unit, golden, property, server and end-to-end.
test: unit e2e

unit:
	$(CARGO) test --locked --all-targets

## e2e: the end-to-end suite on a real kube-apiserver, etcd and kube-controller-manager
## (built once from Go modules and cached in ~/.cache/secure-defaults).
e2e:
	bash e2e/run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## golden: regenerate tests/fixtures/mutate/*.{patch,report}.json and *.out.yaml; review the diff.
golden:
	UPDATE_GOLDEN=1 $(CARGO) test --test golden

bench:
	bash bench/run.sh

## fuzz: each cargo-fuzz target (fuzz/) for FUZZ_SECONDS (60) on nightly, with
## AddressSanitizer. `make test` replays their seeds and regressions without nightly.
fuzz:
	bash fuzz/run.sh

## image: needs a container engine (none runs on the development machines).
image:
	docker build -t secure-defaults:dev .

clean:
	$(CARGO) clean
