# secure-defaults: every developer and CI entry point.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build release run test unit e2e lint fmt golden schema bench fuzz image oci-image test-images clean

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

unit: test-images
	$(CARGO) test --locked --all-targets

## test-images: the OCI archive writer and its agreement with the Dockerfile (Python, a second).
test-images:
	python3 -m unittest discover -s hack/oci-image

## e2e: the end-to-end suite on a real kube-apiserver, etcd, kube-controller-manager,
## kube-scheduler and a kubelet + containerd node (built once from Go modules and
## cached in ~/.cache/secure-defaults; the node needs root).
e2e:
	bash e2e/run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## golden: regenerate tests/fixtures/mutate/*.{patch,report}.json and *.out.yaml; review the diff.
golden:
	UPDATE_GOLDENFILES=1 $(CARGO) test --test golden --test native_policy

## schema: regenerate the `config` part of charts/secure-defaults/values.schema.json
## from the Rust configuration types; review the diff.
schema:
	UPDATE_SCHEMA=1 $(CARGO) test --test chart values_schema_config_is_generated_from_config

bench:
	bash bench/run.sh
	bash bench/native_policy.sh
	$(CARGO) bench --locked --bench image_lookup -- 3000

## fuzz: each cargo-fuzz target (fuzz/) for FUZZ_SECONDS (60) on nightly, with
## AddressSanitizer. `make test` replays their seeds and regressions without nightly.
fuzz:
	bash fuzz/run.sh

## image: needs a container engine (none runs on the development machines).
image:
	docker build -t secure-defaults:dev .

## oci-image: the same image without an engine or registry: a static release build
## packed into target/oci/secure-defaults-<version>.tar (path printed), for
## `ctr -n k8s.io images import`.
oci-image:
	bash hack/oci-image/build-product.sh

clean:
	$(CARGO) clean
