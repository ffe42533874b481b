# redline: two commands for a fresh clone.
#   make demo   creates .venv, installs redline, runs the main job on the embedded STAC API
#   make test   same set-up with test extras (and Debian's chromium for page tests), runs pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test install install-test install-bench browser accuracy bench bench-nrt clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/redline demo --out $(DEMO_OUT) --scenes .cache/demo-scenes

# Debian's chromium and its driver for the page tests in a real browser (no browser downloads),
# and a CJK font so Chinese text renders; installed only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list 2>/dev/null | grep -qi 'noto.*cjk' || \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null )

test: install-test browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO_OUT) .cache

accuracy: install
	$(BIN)/python benchmarks/accuracy.py

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(VENV)/.installed $@

install-bench: $(VENV)/.installed-bench

# redline's detector vs JRC nrt (EWMA, CCDC) on one generated cube: accuracy and pixel-observations/s
bench-nrt: install-bench
	$(BIN)/python benchmarks/detector_vs_nrt.py

# speed and memory benchmarks (issue #9): each prints ratios against a baseline timed in the same run
bench: install-bench
	$(BIN)/python benchmarks/read_limit.py
	$(BIN)/python benchmarks/vs_odc_xarray.py
	$(BIN)/python benchmarks/zonal_stats.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/figures.py
	$(BIN)/python benchmarks/detector_vs_nrt.py
