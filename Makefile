# keycrew: `make run` sets up and serves, `make test` sets up and runs every check.
# Needs only python3 (with venv) on a Debian machine; what is missing is installed here.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
WORKERS ?= 1

# The install is redone only when pyproject.toml's content changes (pip keeps its cache).
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml 2>/dev/null | cut -d' ' -f1)
# apt-get runs as root here; elsewhere through sudo when there is one.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: fuzz bench screenshots help run test unit functional browser install lint typecheck imports migrations-check pytest git system-packages clean

help:
	@echo "make run    set up .venv, migrate ./data and serve on http://$(HOST):$(PORT)"
	@echo "make test   set up .venv (with dev tools) and run every check and test"
	@echo "make unit | functional | browser   one layer of tests/ (unit needs no server nor Debian package)"
	@echo "make fuzz   run schemathesis over every API operation, longer, on SQLite and PostgreSQL"
	@echo "make bench  run the benchmarks under bench/ (installs wrk when missing)"
	@echo "make screenshots  save the web UI's main pages to docs/screenshots/ (headless Chromium)"
	@echo "make clean  remove .venv and caches (./data is kept)"

$(BIN)/pip:
	@if ! $(PYTHON) -m venv $(VENV) >/dev/null 2>&1; then \
		echo "python3 -m venv failed: installing Debian's python3-venv"; \
		rm -rf $(VENV); \
		$(APT) update -q && $(APT) install -y -q python3-venv && $(PYTHON) -m venv $(VENV); \
	fi

$(STAMP): | $(BIN)/pip
	rm -f $(VENV)/.installed-*
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

run: install
	$(BIN)/keycrew serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# Debian packages the tests drive for real: git (smart HTTP), docker-registry and skopeo
# (container registry token auth), prometheus-alertmanager (alerts sent to keycrew),
# dovecot-imapd (Service Desk mail read over IMAP), Chromium's headless shell and a font for the browser tests and
# screenshots (Playwright drives Debian's browser; it never downloads one). Each pair is a command
# or file that tells the package is there, and the package. Installed only when missing.
SYSTEM_PACKAGES := git:git docker-registry:docker-registry skopeo:skopeo \
	chromium-headless-shell:chromium-headless-shell \
	/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core \
	/usr/bin/prometheus-alertmanager:prometheus-alertmanager \
	/usr/sbin/dovecot:dovecot-imapd

system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		command -v $$cmd >/dev/null 2>&1 || [ -e "$$cmd" ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(APT) update -q && $(APT) install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends $$missing; \
	fi

git: system-packages

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

# Upgrade an empty SQLite database to head; the models must then match the schema exactly.
migrations-check: install
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		KEYCREW_DATA_DIR="$$tmp" KEYCREW_DATABASE_URL= \
		$(BIN)/keycrew db check

# The tests run in a random order: modules shuffled, then the tests in each module; the seed is
# printed at the start and the end of the run. `make test TEST_SEED=n` (or pytest's
# --random-order-seed=n) replays an order. The seed is chosen here, once, so that every worker
# process (below) collects the same order.
TEST_SEED ?= $(shell od -An -N3 -tu4 /dev/urandom | tr -d ' ')
PYTEST_ORDER = --random-order-bucket=module --random-order-seed=$(TEST_SEED)
# The suite runs in TEST_WORKERS processes (pytest-xdist), a whole test module to each at a time:
# each process has its own live servers and databases, so none sees another's data. Most of a
# test's time is spent waiting (git, pip, the CLI, Chromium, PostgreSQL), so two processes finish
# the suite in about 60% of the time of one on two cores. `make test TEST_WORKERS=0` runs it in
# one process.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

pytest: install system-packages
	$(BIN)/pytest --durations=15 $(PYTEST_PARALLEL) $(PYTEST_ORDER)

# One layer at a time. Unit tests start no server and need no Debian package.
unit: install
	$(BIN)/pytest $(PYTEST_ORDER) tests/unit

functional: install system-packages
	$(BIN)/pytest --durations=15 $(PYTEST_PARALLEL) $(PYTEST_ORDER) tests/functional

browser: install system-packages
	$(BIN)/pytest --durations=15 $(PYTEST_PARALLEL) $(PYTEST_ORDER) tests/browser

test: system-packages lint typecheck imports migrations-check pytest

# The API contract fuzzed longer than `make test` does (tests/functional/test_openapi_contract.py),
# on SQLite and PostgreSQL (KEYCREW_TEST_POSTGRES_DSN, default postgres@127.0.0.1:5432).
# FUZZ_EXAMPLES sets the examples generated per operation and phase.
FUZZ_EXAMPLES ?= 100

fuzz: install system-packages
	KEYCREW_FUZZ=1 KEYCREW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KEYCREW_TEST_POSTGRES=1 \
		$(BIN)/pytest --durations=5 tests/functional/test_openapi_contract.py

# Benchmarks (not part of `make test`): wrk drives a keycrew started by the script itself.
bench: install
	@command -v wrk >/dev/null 2>&1 || { $(APT) update -q && $(APT) install -y -q wrk; }
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/git.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/soak.py

# Pictures of the web UI for the docs: a throwaway keycrew, a small seeded forge, Chromium.
screenshots: install system-packages
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache build *.egg-info src/*.egg-info
