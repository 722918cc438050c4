# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# rustup's default place of cargo, for the compiled core
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.core

# The stream processor's compiled core (Rust, built by maturin from PyPI with cargo's crates.io deps).
$(VENV)/.native: native/Cargo.toml native/Cargo.lock native/pyproject.toml native/src/lib.rs | $(BIN)/python
	@command -v cargo >/dev/null || { echo "error: cargo not found: the stream's compiled core (native/) needs Rust (https://rustup.rs)" >&2; exit 1; }
	$(BIN)/pip install -q ./native
	touch $@

demo: $(VENV)/.core $(VENV)/.native
	$(BIN)/headwater demo

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks

test: $(VENV)/.dev $(VENV)/.native lint
	$(BIN)/pytest -q

bench: $(VENV)/.dev $(VENV)/.native
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .headwater .pytest_cache native/target
