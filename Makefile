# The two commands of the README: `make demo` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-climb-ray
PYTEST_ARGS ?= -q
# PYTEST_WORKERS=N: test files on N pytest processes (each its own local Ray; a file's tests stay together,
# so module fixtures are built once). For machines with cores to spare: on 2 cores the tests are CPU-bound
# and 2 processes took as long as one (docs/results.md); 0 (the default) runs them in one process
PYTEST_WORKERS ?= 0
PYTEST_PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: setup demo compare serve test test-fast browser clean-runs

setup: $(STAMP)

# torch 2.13.0 first: a CPU build where one is on hand, so no multi-GB CUDA build is pulled in.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[demo,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/climb-ray demo

# CLIMB, RegMix, random and DoReMi on the demo's clusters and target, each searched with 3 seeds and
# each answer scored by 3 evaluation proxies (runs `make demo` first; its finished stages are kept).
compare: $(STAMP)
	$(BIN)/climb-ray demo
	$(BIN)/climb-ray compare --config demo

# The demo's predictor over HTTP (web page, API, docs) on 127.0.0.1:8000 until Ctrl-C.
serve: $(STAMP)
	$(BIN)/climb-ray serve --config demo

# Debian's Chromium for the web page test (tests/e2e/test_web_page.py), installed when missing and we
# are root with apt-get; elsewhere that test is skipped and says why.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the web page test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "could not install chromium: the web page test will be skipped"; \
	fi

# As root with unshare available, the tests run in a private network namespace with only
# loopback up, so every Ray and HTTP server of the tests binds to 127.0.0.1.
test: $(STAMP) browser
	@if [ "$$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 && unshare -n true 2>/dev/null; then \
		echo "running the tests in a loopback-only network namespace"; \
		unshare -n sh -c 'ip link set lo up && exec $(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)'; \
	else \
		$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS); \
	fi

# The quick subset (about 5 minutes here): everything not marked slow.
test-fast:
	$(MAKE) test PYTEST_ARGS='-q -m "not slow"'

clean-runs:
	rm -rf runs data
