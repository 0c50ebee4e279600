# interpsy: two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS := stimuli,lucent,lab,dev
# Debian packages the analysis needs: R and lme4 for the mixed model (glmer).
R_DEBS := r-base-core r-cran-lme4
# Debian packages the test groups need: lab (PsychoPy under Xvfb; libxcb-cursor0, -icccm4 and
# -keysyms1 for PyQt6's xcb plugin, which draws its
# participant-info dialog), browser (Chromium) and the
# proxy test (nginx in front of the app).
DEBS := $(R_DEBS) xvfb xauth libjack-jackd2-0 libportaudio2 libxcb-cursor0 libxcb-icccm4 \
        libxcb-keysyms1 chromium nginx
PYTEST_ARGS ?=
# Two workers, each taking the next test as it finishes (pytest-xdist's worksteal): on this
# project's 2-core machine the suite took 28 % less time than in one process, and three workers
# were slower than two (benchmarks/RESULTS_tests.md). tests/conftest.py gives each worker its
# share of the cores for torch's threads (both spinning two threads took twice as long).
TEST_WORKERS ?= 2
# The inner loop (under 2 minutes): no browser, lab window or PostgreSQL test, and none of the
# tests measured over half a second (tests/slow_tests.txt, marked slow by tests/conftest.py).
FAST := not gpu and not slow and not browser and not lab and not postgres

.PHONY: test test-fast lint demo install debs r-debs clean-venv

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $@

install: $(VENV)/.installed

debs r-debs:
	@missing=""; for p in $(if $(filter r-debs,$@),$(R_DEBS),$(DEBS)); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  (apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null)) \
	   || echo "warning: could not install$$missing; the tests that need them will be skipped"; \
	else \
	  echo "not root: skipping the lab and browser test groups that need the Debian packages:$$missing"; \
	fi

lint: install
	$(VENV)/bin/ruff check .

# Every run leaves test-artifacts/junit.xml: benchmarks/suite_times.py reads the time per folder.
test: install debs lint
	$(PY) -m pytest -m "not gpu" -n $(TEST_WORKERS) --dist worksteal \
	  --junitxml=test-artifacts/junit.xml $(PYTEST_ARGS)

test-fast: install lint
	$(PY) -m pytest -m "$(FAST)" -q $(PYTEST_ARGS)

demo: install r-debs
	$(VENV)/bin/interpsy demo

clean-venv:
	rm -rf $(VENV)
