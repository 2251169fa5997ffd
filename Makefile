# memscope: `make demo` runs the basic example end to end; `make test` runs lint, types and tests.
# Both create .venv and install everything from nothing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# What a rebuild of the editable install depends on: the C sources and the build settings (a
# Python edit needs no reinstall).
BUILD_INPUTS := $(shell find producer protocol analyzers -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null) pyproject.toml
DIR ?= MemoryAnalysis
OUTPUT ?= dashboard.html
PORT ?= 8080

.PHONY: demo run-examples test test-fast lint format typecheck install browser-deps bench html html-only html-clean clean test-native-asan screenshots bench-report html-help test-pythons

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# An editable install: the C extensions are built in place, Python edits take effect at once.
# (tests/integration/test_package.py builds and checks the wheel a user installs.)
$(VENV)/.installed: $(VENV)/bin/activate $(BUILD_INPUTS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# ruff (lint and format), clang-format (.clang-format) and the import layers (pyproject's
# [tool.importlinter]: no package imports one above it).
C_SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find producer protocol analyzers -name '*.[ch]')
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/clang-format --dry-run --Werror $(C_SOURCES)
	$(VENV)/bin/lint-imports --no-cache

# Rewrites the sources the way `make lint` wants them.
format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
	$(VENV)/bin/clang-format -i $(C_SOURCES)

# mypy finds the package through a link named memscope (the checkout may be named otherwise).
typecheck: install
	mkdir -p $(VENV)/mypy-path && ln -sfn $(CURDIR) $(VENV)/mypy-path/memscope
	cd $(VENV) && MYPYPATH=mypy-path ../$(PY) -m mypy -p memscope

# Everything: lint, types, then the unit and integration layers.
test: lint typecheck
	$(PY) -m pytest -q

# The unit layer only (no processes, no sockets: tests/unit/conftest.py), on both cores.
test-fast: install
	$(PY) -m pytest -q -n 2 tests/unit

# memscope-rs's targets. `make check`: lint and types, no tests. The test-* targets run parts
# of the suite (all of it is `make test`), chosen by file:
#   stress       many threads, forks, processes and events at once
#   safety       hostile input, damaged logs, escaping, authentication, error handling
#   performance  the benchmarks' own tests and a quick benchmark of the pytest markers
#   edge         boundary cases: odd command lines, wire and record formats, segment edges
#   integration  real programs end to end: examples, run, the API, pytest, attach
TESTS_STRESS := tests/unit/test_tracer_threads.py tests/integration/test_tracer_fork.py tests/integration/test_run_edges.py \
	tests/integration/test_broker_ingest.py tests/integration/test_broker_restart.py
TESTS_SAFETY := tests/integration/test_broker_hostile.py tests/unit/test_exporters_robust.py \
	tests/unit/test_exporters_labels.py tests/integration/test_broker_curve.py tests/integration/test_broker_orphan.py
TESTS_PERFORMANCE := tests/integration/test_bench_run_all.py
TESTS_EDGE := tests/unit/test_program_argv.py tests/unit/test_records.py tests/unit/test_wire.py \
	tests/integration/test_log_segments.py tests/integration/test_log_chunks.py tests/unit/test_tracer_rec1.py
TESTS_INTEGRATION := tests/integration/test_examples.py tests/integration/test_run_command.py \
	tests/integration/test_api_ground_truth.py tests/integration/test_api_tracing.py tests/integration/test_pytest_plugin.py \
	tests/integration/test_pytest_memray_compat.py tests/integration/test_attach.py tests/integration/test_seed_api.py
.PHONY: check test-stress test-safety test-performance test-edge test-integration run-main \
	run-memory-stress html-dir

check: lint typecheck

test-stress: install
	$(PY) -m pytest -q $(TESTS_STRESS)

test-safety: install
	$(PY) -m pytest -q $(TESTS_SAFETY)

test-performance: install
	$(PY) -m pytest -q $(TESTS_PERFORMANCE)
	$(PY) bench/bench_pytest.py --repeat 1

test-edge: install
	$(PY) -m pytest -q $(TESTS_EDGE)

test-integration: install
	$(PY) -m pytest -q $(TESTS_INTEGRATION)

# memscope-rs's `run-main`: trace the basic example, then its numbers and largest allocators
# in the terminal.
run-main: install
	rm -rf MemoryAnalysis/main
	$(PY) -m memscope run --out MemoryAnalysis/main examples/basic_usage.py
	$(PY) -m memscope stats MemoryAnalysis/main
	$(PY) -m memscope tree MemoryAnalysis/main

# The demo's run directory: the log in $(DEMO_DIR)/events, the reports beside it.
DEMO_DIR ?= MemoryAnalysis/demo

demo: install
	rm -rf $(DEMO_DIR)
	$(PY) -m memscope run --out $(DEMO_DIR) examples/basic_usage.py
	@echo
	@echo "memscope demo: reports in $(DEMO_DIR)/"
	@echo "  dashboard:  $(abspath $(DEMO_DIR))/dashboard.html"
	@echo "  SVGs:       $(DEMO_DIR)/memory_analysis.svg, $(DEMO_DIR)/lifecycle_timeline.svg"
	@echo "  analysis:   $(DEMO_DIR)/snapshot_*.json (six files), $(DEMO_DIR)/memory_snapshot.json"
	@echo "  log:        $(DEMO_DIR)/events/  (try: $(PY) -m memscope stats $(DEMO_DIR))"

# The examples, each traced by `memscope run` into MemoryAnalysis/<name>/ (SIZE=N scales them).
SIZE ?= 1
EXAMPLES := basic:basic_usage lifecycle:lifecycle complex:complex_structures \
	concurrent:concurrent_threads webserver:web_server pipeline:data_pipeline \
	multiprocess:multiprocess_service ffi:ctypes_ffi memory-stress:memory_stress
RUN_TARGETS := $(foreach e,$(EXAMPLES),run-$(firstword $(subst :, ,$(e))))
.PHONY: $(RUN_TARGETS)

$(RUN_TARGETS): run-%: install
	rm -rf MemoryAnalysis/$*
	$(PY) -m memscope run --out MemoryAnalysis/$* \
		examples/$(lastword $(subst :, ,$(filter $*:%,$(EXAMPLES)))).py --size $(SIZE)
	@echo "memscope: $* example: open MemoryAnalysis/$*/dashboard.html"

run-examples: $(RUN_TARGETS)

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info MemoryAnalysis

# Headless Chromium for the dashboard's browser tests (Debian's package; CI runs as root).
browser-deps:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: /usr/bin/chromium"; \
	else apt-get update && apt-get install -y chromium; fi

# The dashboard of the analysis files in DIR: `make html DIR=… OUTPUT=… PORT=…` writes OUTPUT
# and serves DIR on 127.0.0.1:PORT with live updates; html-only just writes the file;
# html-clean removes it.
# A DIR without analysis files of its own stands for its newest run: the subfolder whose
# *_memory_analysis.json was written last (so a bare `make html` shows the latest run under
# MemoryAnalysis/). A bare OUTPUT name goes into that folder.
HTML_DIR = $(shell if ls "$(DIR)"/*_memory_analysis.json >/dev/null 2>&1; then echo "$(DIR)"; \
	else f=$$(ls -t "$(DIR)"/*/*_memory_analysis.json 2>/dev/null | head -n 1); \
	[ -z "$$f" ] || dirname "$$f"; fi)
HTML_OUT = $(if $(findstring /,$(OUTPUT)),$(OUTPUT),$(or $(HTML_DIR),$(DIR))/$(OUTPUT))
HTML_NONE = { echo "make html: no *_memory_analysis.json in $(DIR) or its subfolders (make demo writes some)"; exit 2; }

html-dir:
	@[ -n "$(HTML_DIR)" ] || $(HTML_NONE)
	@echo "$(HTML_DIR)"

html: html-only
	$(PY) -m memscope dashboard "$(HTML_DIR)" --serve --port $(PORT)

html-only: install
	@[ -n "$(HTML_DIR)" ] || $(HTML_NONE)
	$(PY) -m memscope dashboard "$(HTML_DIR)" --output "$(HTML_OUT)"

html-clean:
	rm -f $(HTML_OUT)

html-help:
	@echo "make html      DIR=dir OUTPUT=name.html PORT=8080  write DIR/OUTPUT, then serve DIR live"
	@echo "make html-only DIR=dir OUTPUT=name.html            write the offline dashboard only"
	@echo "make html-clean DIR=dir OUTPUT=name.html           remove it"
	@echo "DIR holds *_memory_analysis.json ... *_unsafe_ffi.json (memscope analyze LOG --out DIR),"
	@echo "or is a folder of runs (default MemoryAnalysis/): its newest run is shown"

# PNG screenshots of the dashboard (each panel) and both SVGs, for review (screenshots/).
screenshots: install browser-deps
	$(PY) tools/screenshots.py tests/data/analysis_sample screenshots/sample
	$(PY) tools/screenshots.py screenshots/synthetic-data screenshots/synthetic
	$(PY) tools/screenshots.py screenshots/hostile-data screenshots/hostile --hostile

bench-report: install browser-deps
	$(PY) bench/bench_report.py

# The tracer's tests and the end-to-end ones on the other supported CPythons (3.11, the
# default, runs them in `make test`): each gets .venv-X.Y with memscope and pytest; a version
# whose interpreter is not found (PYTHON_X_Y, else pyenv's, else pythonX.Y on PATH) is
# skipped with a message.
OTHER_PYTHONS ?= 3.12 3.13
PYTHONS_TESTS ?= tests/*/test_tracer_*.py tests/integration/test_run_edges.py tests/integration/test_run_command.py \
	tests/integration/test_api_tracing.py tests/integration/test_harvest.py tests/integration/test_attach.py tests/unit/test_program_argv.py

test-pythons:
	@for v in $(OTHER_PYTHONS); do \
		var=PYTHON_$$(echo $$v | tr . _); py=$$(printenv $$var || true); \
		[ -n "$$py" ] || py=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.*/bin/python 2>/dev/null | tail -n 1); \
		[ -n "$$py" ] || py=$$(command -v python$$v || true); \
		if [ -z "$$py" ] || ! [ -x "$$py" ]; then \
			echo "test-pythons: CPython $$v not found (set $$var): skipped"; continue; fi; \
		echo "test-pythons: CPython $$v ($$py)"; \
		[ -x .venv-$$v/bin/python ] || "$$py" -m venv .venv-$$v || exit 1; \
		.venv-$$v/bin/python -m pip install --quiet . pytest pytest-timeout || exit 1; \
		.venv-$$v/bin/python -m pip install --quiet --no-deps --force-reinstall . || exit 1; \
		.venv-$$v/bin/python -m pytest -q -p no:cacheprovider $(PYTHONS_TESTS) || exit 1; \
	done

# The tracer's tests against its native core built with AddressSanitizer + UBSan.
test-native-asan: install
	.ci/native_asan.sh
