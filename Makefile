# The two fresh-machine commands: `make demo` (the main job) and `make test` (.ci/run calls it).
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian packages: graphviz's `dot` draws the data map (demo and tests); chromium runs the
# browser test. Installed with apt when missing (as root, or through sudo).
DEMO_DEBS := graphviz
TEST_DEBS := graphviz chromium

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: install demo test test-quick bench fuzz debs-demo debs-test
install: $(VENV)/.installed

debs-demo:
	@./.ci/debs $(DEMO_DEBS)

debs-test:
	@./.ci/debs $(TEST_DEBS)

demo: debs-demo $(VENV)/.installed
	$(PY) -m examples.blausen.demo

# axe-core (accessibility checks of the browser test), from the npm registry, git-ignored
AXE := tests/.npm/node_modules/axe-core/axe.min.js
$(AXE):
	-npm install --no-audit --no-fund --no-save --prefix tests/.npm axe-core@4.14.1

# Two runs: every test but the clocked ones on four pytest workers, then the tests that assert a
# wall-clock limit (SIGTERM within 10 s, idle stop within S + 5 s, the outage timeout, the chaos
# run's joins, the dashboard's broker timeout, lock waits against batches) alone, so that no
# other test squeezes their clock. Most of the first run's
# time is waiting on a broker, a subprocess or a browser: measured on the 2 cores, four workers
# handed one test at a time (the slow ones first) took 4 min 43 s; two took 7 min 31 s, and two
# handed xdist's default runs of consecutive tests 10 min 15 s (one worker got every slow test).
PARALLEL := -n 4 --maxschedchunk 1
test: debs-test $(VENV)/.installed $(AXE)
	$(PY) -m pytest $(PARALLEL) -m "not clocked" --durations=15
	$(PY) -m pytest -m clocked --durations=7

# the everyday loop: everything but the tests marked slow, which `make test` and CI keep
test-quick: debs-test $(VENV)/.installed $(AXE)
	$(PY) -m pytest $(PARALLEL) -m "not slow and not clocked"
	$(PY) -m pytest -m "clocked and not slow"

# opt-in: a longer random fuzz run of the API (CI runs a fixed seed); each case it finds becomes a
# fixed regression test in tests/test_web.py
fuzz: $(VENV)/.installed
	REGISTRY_FUZZ_SEED=random REGISTRY_FUZZ_EXAMPLES=$${EXAMPLES:-200} $(PY) -m pytest tests/test_schemathesis.py

bench: $(VENV)/.installed
	$(PY) bench/ingest_file.py
