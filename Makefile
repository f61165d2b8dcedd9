# Tessera: `make demo` records a sample, `make test` runs every test.
# Both install what is missing first (scripts/setup.sh).

export CARGO_BUILD_JOBS ?= 2
CARGO ?= cargo
DEMO ?= out/demo.mp4

.PHONY: setup build demo test lint bench

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release

# devroom with four synthetic participants (one shares its screen, one joins late,
# one leaves, one toggles its microphone, speaking in turns), recorded for 20 s.
demo: build
	./target/release/tessera demo --duration 20 -o $(DEMO)
	@echo "play it: ffplay $(DEMO)"

# Release profile: the tests run real encodes and renders, and bench/ shares the build.
test: setup
	@scripts/test-peers.sh
	$(CARGO) test --release --all-targets

lint: setup
	$(CARGO) fmt --check
	scripts/module-cycles.py
	$(CARGO) clippy --release --all-targets -- -D warnings

bench: setup
	bench/run.sh
	bench/serve.sh
	bench/outputs.sh
	bench/latency.sh
	bench/fleet.sh
	bench/browser.sh
	SECS=$${HLS_SECS:-1800} bench/hls_drift.sh
