# Two entry points for a new user:
#   make sample   set up, build the corpus from the bundled sample into ./sample-corpus, verify it
#   make test     set up, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE_OUT ?= sample-corpus

.PHONY: setup sample test clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt requirements-train.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt -e .
	touch $@

sample: setup
	$(BIN)/corpus build --sample --output $(SAMPLE_OUT)
	$(BIN)/corpus verify $(SAMPLE_OUT)

test: setup
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) $(SAMPLE_OUT) build *.egg-info .pytest_cache
