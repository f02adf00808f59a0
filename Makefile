# Lanterna: one Makefile for the controller, the firmware and the tests.
# `make test` on a fresh machine: creates .venv, installs the project with its dev extra,
# installs the system packages the tests need (as root), then runs pytest.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TYPINGS := $(VENV)/mpy-typings
BOARD  ?= sim
CONFIG ?=
SCHEDULE ?=
WARP   ?= 1

# Debian package -> a command it provides (checked on PATH and in /usr/sbin).
# package:probe. postgresql: Debian keeps initdb/pg_ctl off PATH (/usr/lib/postgresql/N/bin);
# its pg_ctlcluster is on PATH (tests/pgserver.py finds the server binaries).
SYSDEPS := mosquitto:mosquitto mosquitto-clients:mosquitto_sub libcoap3-bin:coap-client-notls \
  postgresql:pg_ctlcluster chromium:chromium

.PHONY: all venv sysdeps test lint mpy node bench clean demo flash

all: test

venv: $(STAMP)

# Re-run the install whenever pyproject.toml changes (the stamp is older then).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

sysdeps:
	@missing=""; for pair in $(SYSDEPS); do \
	  pkg=$${pair%%:*}; cmd=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages:$$missing"; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; } || \
	      { echo "error: could not install system packages:$$missing" >&2; exit 1; }; \
	  else \
	    echo "error: missing system packages:$$missing (install them: sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

# The main job: a virtual district of three sites against a real broker, end to end.
demo: $(STAMP) sysdeps
	$(BIN)/lanterna demo $(ARGS)

# On every core (pytest-xdist, tests spread as workers fall free): the tests are
# independent (free ports, their own temp dirs and brokers). JOBS=0: one process.
JOBS ?= auto
test: $(STAMP) $(TYPINGS)/.stamp sysdeps
	$(PY) -m pytest -n $(JOBS) --dist worksteal $(PYTEST_ARGS)

# MicroPython stubs laid out as a typeshed so that mypy sees the port's stdlib
# (time.ticks_ms, asyncio.sleep_ms, ...) instead of CPython's.
$(TYPINGS)/.stamp: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --target $(TYPINGS) --upgrade \
	  micropython-esp32-stubs micropython-stdlib-stubs
	@touch $@

lint: $(STAMP) $(TYPINGS)/.stamp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check firmware controller tests bench
	cd firmware && MYPYPATH=../$(TYPINGS) ../$(BIN)/mypy --config-file ../pyproject.toml \
	  --custom-typeshed-dir ../$(TYPINGS) \
	  --no-site-packages --follow-imports=silent --python-version 3.11 -p lamp
	MYPYPATH=firmware $(BIN)/mypy controller/lanterna

mpy: $(STAMP)
	$(BIN)/lanterna firmware build --out build/firmware

# Provision a flashed board (docs/provisioning.md):
#   make flash PORT=/dev/ttyUSB0 BOARD=esp32-devkitc NODE=greenwich-017 SITE=greenwich \
#     ARGS="--wifi-ssid pole-net --wifi-password ..."
flash: $(STAMP)
	@test -n "$(PORT)" -a -n "$(BOARD)" -a -n "$(NODE)" || \
	  { echo "usage: make flash PORT=... BOARD=... NODE=... [SITE=greenwich] [ARGS=...]"; exit 2; }
	$(BIN)/lanterna provision --port $(PORT) --board $(BOARD) --node $(NODE) \
	  --site $(or $(SITE),greenwich) $(ARGS)

node: $(STAMP)
	$(BIN)/lanterna node run --board $(BOARD) --warp $(WARP) --root build/node-flash \
	  $(if $(CONFIG),--config $(abspath $(CONFIG))) \
	  $(if $(SCHEDULE),--schedule $(SCHEDULE))

bench: $(STAMP)
	@for b in bench/bench_*.py; do $(PY) $$b; done

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
