# The two entry points of a fresh Debian machine (run as root):
#   make check   install what is needed, then run netprobe's main job (every check)
#   make test    install what is needed, then lint, type-check and run the test suite
# and the VM tier (checks this kernel cannot run, in one full-kernel guest):
#   make vm-test install qemu, a Debian kernel and virtme-ng, then run tests/vm
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-vm check test vm-test lint bench

setup:
	@scripts/setup.sh

check: setup
	$(BIN)/netprobe doctor
	$(BIN)/netprobe check all

lint: setup
	$(BIN)/ruff check netprobe tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

setup-vm: setup
	@scripts/setup-vm.sh

vm-test: setup-vm
	$(BIN)/python -m pytest tests/vm --netprobe-kernel auto -p no:cacheprovider

bench: setup
	$(BIN)/python bench/topology_build.py
