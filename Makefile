# memscope: `make demo` runs the basic example end to end; `make test` runs lint, types and tests.
# Both create .venv and install everything from nothing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := $(shell find producer broker analyzers exporters config -type f \( -name '*.py' -o -name '*.c' -o -name '*.h' -o -name '*.pyi' -o -name '*.toml' -o -name '*.json' -o -name '*.html' -o -name '*.js' -o -name '*.css' \) 2>/dev/null) __init__.py __main__.py cli.py pyproject.toml
DIR ?= MemoryAnalysis
OUTPUT ?= dashboard.html
PORT ?= 8080

.PHONY: demo test lint typecheck install browser-deps bench html html-only html-clean clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The package is installed (not editable) so the tests exercise what a user installs.
$(VENV)/.installed: $(VENV)/bin/activate $(SOURCES)
	$(PY) -m pip install --quiet '.[dev]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check .

typecheck: install
	cd $(VENV) && ../$(PY) -m mypy -p memscope

test: lint typecheck
	$(PY) -m pytest -q

demo: install
	$(PY) -m memscope run examples/basic_usage.py

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info MemoryAnalysis
