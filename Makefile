# Two commands do everything on a fresh machine with python3 and node/npm:
#   make run   set up, build the contracts, start the local network
#   make test  set up, build, lint, then every forge test and pytest
# Both are idempotent: set-up steps re-run only when their inputs change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FORGE := bin/foundry forge
# CI=true selects the heavier fuzz/invariant campaign in contracts/foundry.toml.
FOUNDRY_PROFILE ?= $(if $(filter true,$(CI)),ci,default)
export FOUNDRY_PROFILE

.PHONY: all setup contracts run test test-contracts test-python test-python-fast test-python-live test-docker test-wheel lint fmt lock clean gas-snapshot browser

all: test

setup: $(VENV)/.installed contracts/node_modules/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# `npm ci`: exactly the committed lockfile (versions and integrity hashes), never rewriting it.
# The lockfile lists every platform's Foundry binary package, as the registry serves them;
# npm installs only this platform's. --ignore-scripts: the binaries ship inside the platform
# packages; the postinstall hooks would only try to fetch them again.
contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json contracts/bin/fetch-chainlink
	cd contracts && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	contracts/bin/fetch-chainlink
	touch $@

# The compiler needs the npm toolchain only: it starts without waiting for the venv.
contracts: contracts/node_modules/.installed
	cd contracts && $(FORGE) build

run: setup contracts
	$(BIN)/mira devnet up

# Everything below, in three phases shaped for a 2-core machine (CI), each phase a make -j
# (the first one's output grouped per target; the third's line by line, so that the ~18 min
# of live suites show their progress as they go):
# 1. set-up side by side (the venv, the npm toolchain then solc, chromium), lint and the
#    compose check beside the compiler (solc is one single-threaded process, ~5 min), then
#    the wheel's smoke test (it needs the contracts);
# 2. pytest's first pass on every core;
# 3. the live suites at normal priority, and beside them at the lowest CPU priority
#    (BESIDE: nice 19) forge's fuzz and invariant campaign, which has no clock to miss: it
#    takes only what the live suites leave, so their rounds are not starved. (The wheel's
#    smoke test, waiting 60 s for its node, failed niced there: it starved.)
test:
	$(MAKE) --no-print-directory -j4 --output-sync=target lint contracts browser test-docker test-wheel
	$(MAKE) --no-print-directory test-python-fast
	$(MAKE) --no-print-directory -j2 --output-sync=line BESIDE="nice -n 19" test-python-live test-contracts

lint: setup
	$(BIN)/ruff check oracle tests
	$(BIN)/ruff format --check oracle tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd contracts && $(FORGE) fmt --check

# The gas snapshot pins the transmit hot path: a change shows up as a diff to review and
# re-record with `make gas-snapshot`.
# BESIDE: a command prefix (`make test` sets `nice -n 19`) for work run beside the live suites.
BESIDE ?=
test-contracts: contracts
	cd contracts && $(BESIDE) $(FORGE) test
	cd contracts && $(BESIDE) $(FORGE) snapshot --match-contract GasTest --check

gas-snapshot: contracts
	cd contracts && $(FORGE) snapshot --match-contract GasTest

# Two passes: every test but the live suites on every core (pytest-xdist), then the live
# suites (marked slow: committees of node processes, devnets, a browser) one after another
# without other work at normal priority: beside it on a 2-core machine they would starve
# each other's rounds (`make test` runs only niced work beside them).
test-python:
	$(MAKE) --no-print-directory test-python-fast
	$(MAKE) --no-print-directory test-python-live

test-python-fast: setup contracts browser
	$(BIN)/pytest --durations=20 -n auto -m "not slow"

test-python-live: setup contracts browser
	$(BIN)/pytest --durations=20 -m slow

# The dashboard's browser tests (tests/dashboard) drive Debian's chromium through Playwright;
# Playwright's own browser download is never used. Installed with apt-get when missing (as
# root, as on CI); silent when it is there already.
browser:
	@test -x /usr/bin/chromium || { \
		echo "browser: installing Debian's chromium for the dashboard tests (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# docker/compose.yaml checked by whichever compose client is installed (`docker compose`,
# else docker-compose v1), and the entry scripts parsed by sh. Nothing here can build or run
# a container; without a client the compose check is skipped, saying so.
COMPOSE_FILE := docker/compose.yaml
test-docker:
	@for script in docker/*.sh; do sh -n "$$script" || exit 1; done
	@if docker compose version >/dev/null 2>&1; then \
		echo "docker compose -f $(COMPOSE_FILE) config -q"; \
		docker compose -f $(COMPOSE_FILE) config -q; \
	elif command -v docker-compose >/dev/null 2>&1; then \
		echo "docker-compose -f $(COMPOSE_FILE) config -q"; \
		docker-compose -f $(COMPOSE_FILE) config -q; \
	else \
		echo "test-docker: no docker compose client installed; $(COMPOSE_FILE) not validated (skipped)"; \
	fi

# The wheel as a user installs it: built from this checkout (it bundles the contract
# artifacts of `make contracts` and the demo feed specs), installed into a throwaway venv
# against constraints.txt; then, from an empty temporary directory, `mira --help`,
# `mira db upgrade` on a new SQLite file and a short `mira node run` ended by SIGTERM.
# About 40 s; uses the package index only (pip's own).
test-wheel: setup contracts
	$(BIN)/python tests/wheel/smoke.py

fmt: setup
	$(BIN)/ruff format oracle tests
	$(BIN)/ruff check --fix oracle tests
	cd contracts && $(FORGE) fmt

# Re-resolve the Python dependencies and rewrite the constraints file CI installs from.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet -e '.[dev]'
	{ echo "# Exact versions CI and \`make\` install (pip install -c constraints.txt). Regenerate with \`make lock\`."; \
	  .lockenv/bin/pip freeze --exclude-editable | grep -iv '^mira-oracle'; } > constraints.txt
	rm -rf .lockenv

clean:
	rm -rf $(VENV) contracts/node_modules contracts/out contracts/cache *.egg-info build dist .mypy_cache .ruff_cache .pytest_cache
