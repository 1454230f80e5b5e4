# Set-up, build and test on Debian 12. Every target does the whole set-up it needs and is
# idempotent: Debian packages are installed only when missing, the venv is made once, and the
# maturin build reruns only when its inputs change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages for the live bridge and the demo (jackd -d dummy, libjack for JACK-Client,
# libsndfile for soundfile) and for making the venv: all that `make run` installs.
APT_PACKAGES := jackd2 libjack-jackd2-dev libsndfile1 python3-venv
# Only for `make test`: headless Ardour 7 for the template test, PipeWire and its libjack for the
# PipeWire test, Debian's chromium for the browser page test (tests/test_ws.py).
APT_TEST_PACKAGES := ardour pipewire pipewire-jack chromium
# User units that pipewire's postinst enables for every user (deb-systemd-helper --user enable);
# the PipeWire test starts its own server, so `make test` disables them again if it enabled them.
PIPEWIRE_USER_UNITS := pipewire.service pipewire.socket
MATURIN := maturin>=1.8,<2

# rustup's cargo is not on every non-login PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export DEBIAN_FRONTEND := noninteractive

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Everything the wheel is built from: a change to any of these triggers a rebuild.
BUILD_INPUTS := pyproject.toml rust_engine/Cargo.toml rust_engine.pyi \
	$(wildcard rust_engine/Cargo.lock rust_engine/build.rs) \
	$(shell find rust_engine/src bridge tui -type f \( -name '*.rs' -o -name '*.py' -o -name '*.pyi' \
		-o -name '*.tcss' -o -name '*.html' -o -name 'py.typed' \) 2>/dev/null) \
	$(shell find daw_templates -type f -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: run test lint rust-components apt-deps apt-test-deps apt-test-packages install clean

# The main job: a dummy JACK server if none is running, the bundled demo looped into the live
# bridge, and the TUI (a live log of the notes when there is no terminal). Ctrl-C stops it.
run: install
	$(BIN)/daw-bridge run --demo demo/demo.wav --tui

test: install apt-test-deps lint
	cargo test --manifest-path rust_engine/Cargo.toml
	@# pytest exits 5 when it collects no test: not a failure of the code.
	$(BIN)/pytest tests || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected"; [ $$rc -eq 5 ]; }

# The lint gate, also run by `make test`: ruff and mypy on the Python, stubtest holding
# rust_engine.pyi to the built module, rustfmt and clippy (every feature, every target) on the Rust.
lint: install rust-components
	$(BIN)/ruff check .
	$(BIN)/mypy bridge tui
	@# From the repository root stubtest reads the source stub (the root's rust_engine.pyi).
	$(BIN)/python -m mypy.stubtest rust_engine --allowlist rust_engine/stubtest-allowlist.txt
	cargo fmt --manifest-path rust_engine/Cargo.toml --check
	cargo fmt --manifest-path rust_engine/fuzz/Cargo.toml --check
	@# PyO3's build script asks the venv's Python, as it does under maturin.
	PYO3_PYTHON=$(CURDIR)/$(BIN)/python cargo clippy --manifest-path rust_engine/Cargo.toml \
		--all-targets --all-features -- -D warnings

# rustfmt and clippy come with rustup's default profile but not its minimal one.
rust-components:
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

install: apt-deps $(VENV)/.installed

# $(call apt_install,PACKAGES): installs those of PACKAGES that are missing.
define apt_install
	@missing=""; \
	for p in $(1); do \
		[ "$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null)" = installed ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

apt-deps:
	$(call apt_install,$(APT_PACKAGES))

# When this target is what installs pipewire, it disables the units pipewire's postinst enabled
# (`systemctl --global` edits the links in /etc/systemd/user and needs no running systemd); the
# postinst re-enables only units that deb-systemd-helper's state says were enabled, so upgrades
# leave them off too. An existing pipewire (a desktop that uses it) is left as it is.
apt-test-deps:
	@fresh="$$([ "$$(dpkg-query -W -f='$${db:Status-Status}' pipewire 2>/dev/null)" = installed ] || echo yes)"; \
	$(MAKE) --no-print-directory apt-test-packages; \
	if [ -n "$$fresh" ]; then \
		for u in $(PIPEWIRE_USER_UNITS); do \
			if systemctl --global --quiet is-enabled $$u 2>/dev/null; then \
				echo "disabling $$u for all users (enabled by pipewire's postinst)"; \
				$(SUDO) systemctl --global disable $$u; \
			fi; \
		done; \
	fi

apt-test-packages:
	$(call apt_install,$(APT_TEST_PACKAGES))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Built without isolation against the venv's maturin: no per-build download, same result.
$(VENV)/.installed: $(BIN)/python $(BUILD_INPUTS)
	$(BIN)/python -m pip install -q '$(MATURIN)'
	$(BIN)/python -m pip install -q --no-build-isolation '.[test]'
	touch $@

clean:
	rm -rf $(VENV) rust_engine/target
