# hostledger: the front door. `make` (or `make help`) lists the targets.
#
# Everything runs from the virtualenv in .venv, created and filled on first
# use and refilled whenever pyproject.toml changes. Nothing needs activating.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Python 3.11 is what pyproject.toml asks for; python3 is the fallback.
BOOTSTRAP_PYTHON := $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

# the web pages' gettext catalogues: the .po files are kept in the repository, each
# compiled into its .mo by the install step (and again whenever the .po changes)
LOCALE := gateway/web/locale
PO_FILES := $(wildcard $(LOCALE)/*/LC_MESSAGES/messages.po)
MO_FILES := $(PO_FILES:.po=.mo)

# make test PYTEST_ARGS='-x -k invoice'
PYTEST_ARGS ?=
# make run SCALE=billing=3,orders=2
SCALE ?=

.PHONY: help install preflight browser tools messages run test unit integration e2e web bench lint clean distclean

help:
	@echo 'hostledger: make <target>'
	@echo
	@echo '  run          run every service on this machine (Ctrl-C stops them);'
	@echo '               SCALE=billing=3,orders=2 runs more instances of a service'
	@echo '               (gateway and mailgateway: one each, they own fixed ports)'
	@echo '  test         all tests (unit, integration, e2e, ...); PYTEST_ARGS adds pytest options'
	@echo '  unit         tests/unit only (no PostgreSQL or RabbitMQ needed)'
	@echo '  integration  tests/integration (real PostgreSQL and RabbitMQ)'
	@echo '  e2e          tests/e2e (through the HTTP gateway)'
	@echo '  web          tests/browser (the web pages in Chromium)'
	@echo '  bench        measure throughput and latency against the bare substrate'
	@echo '  lint         ruff check .'
	@echo '  preflight    make sure PostgreSQL and RabbitMQ answer (start or install them locally)'
	@echo '  tools        the tools the tests run (promtool), installed when missing'
	@echo '  install      create .venv and install hostledger with its dev tools,'
	@echo '               and compile the web pages'"'"' translations'
	@echo '  messages     update the web pages'"'"' catalogues (gateway/web/locale) from'
	@echo '               the templates and page code; then translate the new entries'
	@echo '  clean        remove caches and build output'
	@echo '  distclean    clean, and remove .venv too'
	@echo
	@echo 'Settings come from the environment: see deploy/README.md.'

$(PY):
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo 'make: python3.11 (or python3) is not on PATH' >&2; exit 1; }
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[dev]'
	@if $(PY) -m pip show -q psycopg-binary >/dev/null 2>&1 || $(PY) -m pip show -q psycopg-c >/dev/null 2>&1; then \
		echo 'make: psycopg-binary/psycopg-c is installed in $(VENV): it blocks eventlet; uninstall it' >&2; exit 1; \
	fi
	@touch $@

$(LOCALE)/%/LC_MESSAGES/messages.mo: $(LOCALE)/%/LC_MESSAGES/messages.po | $(STAMP)
	$(VENV)/bin/pybabel -q compile -D messages -l $* -i $< -o $@

install: $(STAMP) $(MO_FILES)

messages: $(STAMP)
	cd gateway/web && ../../$(VENV)/bin/pybabel -q extract -F babel.cfg -o locale/messages.pot \
		--project=hostledger --copyright-holder=hostledger --no-location --sort-output --width=100 .
	$(VENV)/bin/pybabel -q update -D messages -i $(LOCALE)/messages.pot -d $(LOCALE) \
		--width=100 --ignore-obsolete --ignore-pot-creation-date

preflight:
	@deploy/preflight.sh

# the browser the browser tests drive (Debian's Chromium)
browser:
	@deploy/preflight.sh browser

# the tools the tests run: promtool checks deploy/prometheus/ (Debian's prometheus)
tools:
	@deploy/preflight.sh tools

run: install
	SCALE='$(SCALE)' deploy/run.sh

# make exits 2 when pytest fails; pytest's own exit code is printed.
define pytest
	@echo '$(PY) -m pytest $(1) $(PYTEST_ARGS)'
	@$(PY) -m pytest $(1) $(PYTEST_ARGS) || { rc=$$?; echo "make: pytest exited with $$rc" >&2; exit $$rc; }
endef

test: install preflight browser tools
	$(call pytest,tests)

unit: install
	$(call pytest,tests/unit)

integration: install preflight
	$(call pytest,tests/integration)

e2e: install preflight
	$(call pytest,tests/e2e)

web: install preflight browser
	$(call pytest,tests/browser)

bench: install preflight
	$(PY) -m tests.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist *.egg-info

distclean: clean
	rm -rf $(VENV)
