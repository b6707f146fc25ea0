# The two entry points of a fresh Debian machine (run as root):
#   make check   install what is needed, then run netprobe's main job (every check)
#   make test    install what is needed, then lint, type-check and run the test suite
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup check test lint bench

setup:
	@scripts/setup.sh

check: setup
	$(BIN)/netprobe doctor
	$(BIN)/netprobe check all

lint: setup
	$(BIN)/ruff check netprobe checks tests bench
	$(BIN)/mypy
	$(BIN)/mypy --strict checks

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/topology_build.py
