# Both `make demo` and `make test` bootstrap .venv from a bare Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint types unit bench clean wasm-example

# examples/opsrun, the example host application, is installed too: its `opsrun` command is
# what tests/opsrun runs.
$(STAMP): pyproject.toml examples/opsrun/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "plugbay needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e examples/opsrun
	@touch $(STAMP)

# The tools benchmarks compare against (stevedore, pluggy, ansible-core) are only for bench.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/ruff check src tests benchmarks examples

types: $(STAMP)
	$(BIN)/mypy

# Two workers: most tests wait on processes and servers of their own, so two cores run
# the suite in about half the time. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
unit: $(STAMP)
	scripts/ensure-test-tools && $(BIN)/pytest -q -n $(PYTEST_WORKERS)

test: lint types unit

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/discovery/run.py
	$(BIN)/python benchmarks/hooks/run.py
	$(BIN)/python benchmarks/install/run.py
	$(BIN)/python benchmarks/index/run.py
	$(BIN)/python benchmarks/exec/run.py
	$(MAKE) wasm-example
	$(BIN)/python benchmarks/wasm/run.py
	$(BIN)/python benchmarks/reload/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(AS_GREETER)/node_modules $(AS_GREETER)/greeter.wasm $(AS_GREETER)/greeter.debug.*

# The AssemblyScript example plugin (a WebAssembly plugin): needs node and npm, which
# `make demo` and `make test` do not. npm ci installs exactly package-lock.json.
AS_GREETER := examples/plugins/as-greeter
AS_SOURCES := $(wildcard $(AS_GREETER)/assembly/*.ts) $(AS_GREETER)/asconfig.json

wasm-example: $(AS_GREETER)/greeter.wasm

$(AS_GREETER)/node_modules/.package-lock.json: $(AS_GREETER)/package.json $(AS_GREETER)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make wasm-example needs npm (and node) on PATH to build $(AS_GREETER); install Node.js 20 or newer (with npm 10)"; exit 1; }
	cd $(AS_GREETER) && npm ci --no-audit --no-fund --loglevel=error

$(AS_GREETER)/greeter.wasm: $(AS_GREETER)/node_modules/.package-lock.json $(AS_SOURCES)
	cd $(AS_GREETER) && npm run --silent build
