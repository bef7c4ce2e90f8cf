# Quick start: `make serve` (set up, build the demo workspace if missing, serve the
# dashboards) and `make test`. Everything installs into .venv; nothing global.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
WORKSPACE ?= data/demo.duckdb
PORT   ?= 8866
HOST   ?= 127.0.0.1
PYTEST_ARGS ?=

.PHONY: setup setup-backends demo serve lab test test-fast bench lint format clean help

help:
	@echo "make serve   set up, build the demo workspace if missing, serve the dashboards"
	@echo "make test    run the whole test suite (unit, notebooks, browser, Spark/PostgreSQL)"
	@echo "make test-fast  unit tests only (no notebooks, browser or other backends)"
	@echo "make lab     JupyterLab on notebooks/"
	@echo "make bench   benchmarks (speed and memory)"

BSTAMP := $(VENV)/.backends-stamp

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version' 
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# Spark and PostgreSQL clients for the backend leg of `make test` (not needed to serve).
$(BSTAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,backends]"
	touch $(BSTAMP)

setup-backends: $(BSTAMP)

$(WORKSPACE): | $(STAMP)
	$(BIN)/cs-analysis demo --out $(WORKSPACE)

demo: $(WORKSPACE)

serve: setup demo
	$(BIN)/cs-analysis serve --workspace $(WORKSPACE) --host $(HOST) --port $(PORT)

lab: setup demo
	CS_WORKSPACE=$(abspath $(WORKSPACE)) $(BIN)/jupyter lab notebooks/

# pytest exits 5 when nothing was collected: say so plainly instead of a bare error.
test: setup-backends
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 1; fi; exit $$rc

test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not notebook and not backends" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check cs_analysis tests benchmarks notebooks dashboards

format: setup
	$(BIN)/ruff format cs_analysis tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
