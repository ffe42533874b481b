# redline: two commands for a fresh clone.
#   make demo   creates .venv, installs redline, runs the main job on the embedded STAC API
#   make test   same set-up with test extras (and Debian's chromium for page tests, Debian's
#               postgresql and postgis for the register's PostGIS tests, Debian's poppler-utils
#               for the PDF report's tests, Debian's gpsbabel and gdal-bin to read the outputs
#               back as other tools do), runs pytest
#   both install Debian's fonts-noto-cjk when no CJK font is found (target fonts)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out
# pytest processes for make test (pytest-xdist, one test file per process at a time: a file's
# module fixtures stay in one process); 2 keeps the suite near 11 minutes on a 2-core CI machine
TEST_WORKERS ?= 2

.PHONY: demo test install install-test install-bench fonts browser postgres poppler readers accuracy bench bench-nrt clean

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

demo: install fonts
	$(BIN)/redline demo --out $(DEMO_OUT) --scenes .cache/demo-scenes

# Debian packages the two commands use, each installed only when missing (apt-get as root, else
# through sudo):
#   fonts-noto-cjk             Chinese labels in figures, pages and the PDF report (demo and test);
#                              skipped when redline already finds a CJK font by file (maps/_fonts.py)
#   chromium, chromium-driver  the page tests in a real browser, no browser download (test)
#   postgresql, postgresql-postgis
#                              a throw-away PostgreSQL + PostGIS server for the register tests (tests/pg.py):
#                              Debian's default server version and its postgis (Debian 12: postgresql-15,
#                              postgresql-15-postgis-3); skipped when a /usr/lib/postgresql/<version> has
#                              its server and its postgis.control is there (test)
#   poppler-utils              pdftoppm, pdftotext, pdfimages: the report tests render report.pdf's pages
#                              to PNG, read their text and list their images (test)
#   gpsbabel, gdal-bin         the GPX/KML exports read back as a GPS unit's software does, and the
#                              COGs' band names, units, colour tables and categories read with
#                              gdalinfo as QGIS reads them through GDAL (test)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq
fonts: install
	@$(BIN)/python -c 'import sys; from maps import find_cjk_font_file; sys.exit(find_cjk_font_file() is None)' || \
	  ( echo "installing Debian's fonts-noto-cjk (Chinese labels in figures and reports)" && $(APT_INSTALL) fonts-noto-cjk >/dev/null )

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ( echo "installing Debian's chromium and chromium-driver (page tests in a real browser)" && $(APT_INSTALL) chromium chromium-driver >/dev/null )

poppler:
	@command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null && command -v pdfimages >/dev/null || \
	  ( echo "installing Debian's poppler-utils (the PDF report's tests: pdftoppm, pdftotext, pdfimages)" && $(APT_INSTALL) poppler-utils >/dev/null )

# a Debian server major with both its binaries and the postgis extension files (as tests/pg.py looks)
postgres:
	@for c in /usr/share/postgresql/*/extension/postgis.control; do \
	  [ -x "/usr/lib/postgresql/$$(basename "$$(dirname "$$(dirname "$$c")")")/bin/postgres" ] && exit 0; \
	done; \
	echo "installing Debian's postgresql and postgresql-postgis (register tests on a throw-away PostGIS server)" && \
	$(APT_INSTALL) postgresql postgresql-postgis >/dev/null

# the readers of the outputs in tests/test_conformance.py, each installed only when missing
readers:
	@command -v gpsbabel >/dev/null || \
	  ( echo "installing Debian's gpsbabel (GPX/KML exports read back in tests)" && $(APT_INSTALL) gpsbabel >/dev/null )
	@command -v gdalinfo >/dev/null || \
	  ( echo "installing Debian's gdal-bin (the COGs read back with gdalinfo in tests)" && $(APT_INSTALL) gdal-bin >/dev/null )

test: install-test fonts browser postgres poppler readers
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

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
	$(BIN)/python benchmarks/register_decision.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/figures.py
	$(BIN)/python benchmarks/incremental.py
	$(BIN)/python benchmarks/detector_vs_nrt.py
