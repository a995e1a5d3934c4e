# vrouter — build, test and tooling entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
CARGO ?= cargo

# Debian 12 packages (design.md §3). Build: the -sys crates and etcd-client's protoc step
# (libprotobuf-dev is only a Recommends of protobuf-compiler, and without it the build fails).
DEB_BUILD := pkg-config libnftnl-dev libmnl-dev protobuf-compiler libprotobuf-dev
# Run: what the binaries link against and call.
DEB_RUN := libnftnl11 libmnl0 nftables iproute2
# Test, demo and bench: real etcd, BGP peers, traffic tools.
DEB_TEST := etcd-server etcd-client bird2 gobgpd frr iperf3 iputils-ping ethtool procps util-linux tmux tcpdump
DEBS := $(DEB_BUILD) $(DEB_RUN) $(DEB_TEST)

.PHONY: deps build test lint fmt bench fuzz clean-test-leftovers demo

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
## The binaries are built first: the lab and e2e tests run vrouterd, vrouter-cni, vrctl and
## vrouter-reflector as processes (cargo test alone builds a package's binaries only when
## that package has integration tests).
test: deps
	@[ "$$(id -u)" = 0 ] || { echo "make test needs root (network namespaces)"; exit 1; }
	$(CARGO) build --workspace --bins
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

## demo: a lab cluster on this machine (needs root): etcd, 3 nodes running vrouterd in network
## namespaces on a bridge, 2 pods per node made through vrouter-cni, the measured reachability
## matrix; then the example IPPool and policy. `target/release/vrctl lab down` removes it all.
VRCTL := target/release/vrctl
demo: deps
	@[ "$$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
	$(CARGO) build --release --bins
	$(VRCTL) lab up --nodes 3 --pods-per-node 2
	$(VRCTL) --etcd-endpoints "$$($(VRCTL) lab etcd)" apply -f examples/demo/
	@echo; echo "Try next:"; \
	echo "  $(VRCTL) lab status                        nodes, pods, BGP sessions, fresh matrix"; \
	echo "  export VROUTER_ETCD_ENDPOINTS=$$($(VRCTL) lab etcd)"; \
	echo "  $(VRCTL) get ippools -o wide; $(VRCTL) get workloadendpoints -A"; \
	echo "  $(VRCTL) policy test --from <pod ip> --to <pod ip> --protocol TCP --port 22"; \
	echo "  $(VRCTL) node status --socket /run/vrouter-lab/vl/vl-n0.ctl"; \
	echo "  target/release/vrouterc -s /run/vrouter-lab/vl/vl-n0.ctl   (show protocols, show route)"; \
	echo "  ip netns exec vl-n0-p0 ping <pod ip>;  ip -n vl-n0 route"; \
	echo "  $(VRCTL) lab down                          remove everything"

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
