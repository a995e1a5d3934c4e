# vrouter — build, test and tooling entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
CARGO ?= cargo

# Debian 12 packages (design.md §3). Build: the -sys crates and etcd-client's protoc step
# (libprotobuf-dev is only a Recommends of protobuf-compiler, and without it the build fails).
DEB_BUILD := pkg-config libnftnl-dev libmnl-dev protobuf-compiler libprotobuf-dev
# Run: what the binaries link against and call.
DEB_RUN := libnftnl11 libmnl0 nftables iproute2
# Test, demo and bench: real etcd, BGP peers, traffic tools.
DEB_TEST := etcd-server etcd-client bird2 gobgpd frr iperf3 iputils-ping ethtool procps util-linux
DEBS := $(DEB_BUILD) $(DEB_RUN) $(DEB_TEST)

.PHONY: deps build test lint fmt bench fuzz clean-test-leftovers

## deps: install every Debian package the build, tests and demo need (idempotent).
## A temporary policy-rc.d keeps packages like bird2 and frr from starting system daemons:
## tests start their own.
deps:
	@missing=$$(for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -z "$$missing" ]; then echo "deps: all packages present"; exit 0; fi; \
	echo "deps: installing$$(echo $$missing | tr '\n' ' ')"; \
	SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; \
	$$SUDO chmod +x /usr/sbin/policy-rc.d; \
	trap '$$SUDO rm -f /usr/sbin/policy-rc.d' EXIT; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing

## build: release build of every binary.
build: deps
	$(CARGO) build --workspace --release

## test: the whole suite — unit, real etcd, network namespaces, BGP peers. Needs root.
test: deps
	@[ "$$(id -u)" = 0 ] || { echo "make test needs root (network namespaces)"; exit 1; }
	$(CARGO) test --workspace --no-fail-fast
	@$(MAKE) --no-print-directory clean-test-leftovers

## Fails if tests left namespaces or daemons behind (they must clean up, also on failure).
clean-test-leftovers:
	@left=$$(ip netns list | grep -E '^vt-' || true); \
	if [ -n "$$left" ]; then echo "tests left namespaces behind:"; echo "$$left"; exit 1; fi; \
	procs=$$(pgrep -a -f 'vrouter-(etcd|bird|gobgp|frr)-' || true); \
	if [ -n "$$procs" ]; then echo "tests left processes behind:"; echo "$$procs"; exit 1; fi; \
	echo "no test leftovers"

## lint: formatting and clippy, warnings are errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: benchmarks side by side with their baselines (see BENCHMARKS.md).
bench: deps
	$(CARGO) bench -p bench

## fuzz: run every cargo-fuzz target for FUZZ_SECONDS each (default 60). cargo-fuzz needs
## nightly-only rustc flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
