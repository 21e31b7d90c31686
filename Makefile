# debstage: build, test, demo and benchmark.
#   make          build the release binary
#   make test     install what the tests need (Debian packages), check formatting and
#                 clippy (make lint), then run every test
#   make check    the fast tier while working: make lint, the unit tests and the
#                 integration tests that need no Debian root, store or venv (a few
#                 minutes warm); make test stays the gate
#   make demo     build the bundled example, carry it through a repository's stages
#   make bench    benchmarks against dpkg-deb, reprepro and aptly (ratios, same run),
#                 aptly also publishing to the same Garage as debstage (bench/s3.py)
#   make fuzz     the fuzz targets with many cases (FUZZ_CASES per target)
#   make garage   build Garage (the S3 store the publish-target tests run) once into
#                 $HOME/.cache/debstage/tools; later runs reuse it

CARGO ?= cargo
# Debian packages the tests and benchmarks use: the real tools that check our output.
TEST_PACKAGES = dpkg-dev lintian debootstrap shellcheck gnupg gpgv sqv python3-venv stunnel4 nginx-light \
	xz-utils zstd apt python3-pip gcc zlib1g-dev systemd-container piuparts \
	binutils g++ make git chromium openssl
# Node.js for the node kind's tests (npm, node-gyp, the headers native modules build
# against): Debian's, unless the machine has an npm already (NodeSource's nodejs bundles
# npm and conflicts with Debian's npm package).
NODE_PACKAGES = nodejs npm node-gyp libnode-dev
BENCH_PACKAGES = reprepro aptly python3
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BINARY = target/release/debstage

.PHONY: all build test check deps bench-deps demo bench deb lint clean fuzz garage

# Garage, the S3-compatible store the publish-target tests start (tests/support/s3.rs
# finds it here, or at $$DEBSTAGE_GARAGE). Built from crates.io only when the binary is
# missing: the first build took 47 minutes on 2 cores shared with other builds, so CI
# caches this directory. It is built at opt-level 1: the tests need a working store, not
# a fast one, and this saves a good part of the compile time.
GARAGE_VERSION = 2.5.0
GARAGE_ROOT = $(HOME)/.cache/debstage/tools/garage-$(GARAGE_VERSION)
GARAGE = $(GARAGE_ROOT)/bin/garage

all: build

build:
	$(CARGO) build --release

# Installs only what is missing, so a machine that has everything does not touch apt.
deps:
	@packages="$(TEST_PACKAGES)"; command -v npm >/dev/null || packages="$$packages $(NODE_PACKAGES)"; \
	missing=""; for p in $$packages; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

bench-deps: deps
	@missing=""; for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(GARAGE):
	CARGO_PROFILE_RELEASE_OPT_LEVEL=1 $(CARGO) install --locked garage --version $(GARAGE_VERSION) --root $(GARAGE_ROOT)

garage: $(GARAGE)

test: deps garage lint
	$(CARGO) test

# What make check leaves to make test: debootstrap roots and booted systemd (e2e::,
# build_target::), object stores (publish_targets::), venvs and npm, pnpm, yarn installs (python,
# node::, node_managers::, layers::).
SLOW_TESTS = --skip e2e:: --skip build_target:: --skip publish_targets:: --skip python --skip node:: \
	--skip node_managers:: --skip layers::
check: lint
	$(CARGO) test -- $(SLOW_TESTS)

# The fuzz targets (src/fuzz_tests.rs) with many more cases than make test runs:
# random and mutated inputs for the .deb reader, the control parser, version parsing and
# the manifest loader. FUZZ_CASES=N sets the cases per target.
FUZZ_CASES ?= 20000
fuzz:
	FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --lib fuzz_tests -- --test-threads=2

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# The dev profile (dependencies optimised) shares its build with make test.
demo: deps
	$(CARGO) build
	./examples/demo.sh target/debug/debstage

bench: bench-deps build garage
	./bench/run.sh $(BINARY)

clean:
	$(CARGO) clean

# The .deb of debstage itself, built as a `command` environment whose command runs
# `cargo build --release` (packaging/debstage/debstage.toml); the version is Cargo.toml's.
deb: build
	$(BINARY) build --manifest packaging/debstage/debstage.toml --out target/deb \
	  --version "$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
