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

# Until the room exists: a grid of four synthetic participants, one speaking,
# one muted, for 10 seconds.
demo: build
	./target/release/tessera preview --layout grid --participants 4 --speaking 2 --muted 3 --duration 10 -o $(DEMO)
	@echo "play it: ffplay $(DEMO)"

# Release profile: the tests run real encodes and renders, and bench/ shares the build.
test: setup
	@scripts/test-peers.sh
	$(CARGO) test --release --all-targets

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

bench: setup
	bench/run.sh
