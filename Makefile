# Two entry points for a new user:
#   make sample   set up, build the corpus from the bundled sample into ./sample-corpus, verify it
#   make test     set up, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE_OUT ?= sample-corpus

.PHONY: setup setup-test sample test install-check bench clean

# The pipeline alone: what `make sample` and a Dataflow launch need.
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $@

# Plus the test tools and the training stack (torch CPU, sentence-transformers).
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-train.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

sample: setup
	$(BIN)/corpus build --sample --force --output $(SAMPLE_OUT)
	$(BIN)/corpus verify $(SAMPLE_OUT)

# A test file's tests run in one process (module fixtures are built once), the files on every core.
test: setup-test
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

# The install a user does: the wheel in a fresh environment with pip alone (.ci/install-check).
install-check: setup-test
	.ci/install-check $(PYTHON)

bench: setup
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.options

clean:
	rm -rf $(VENV) $(SAMPLE_OUT) build dist *.egg-info .pytest_cache
