# Two entry points: `make repro` runs the whole pipeline, `make test` runs the test suite
# (`make test-fast` leaves out the end-to-end DVC runs, for a quick loop).
# Each creates .venv on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: repro demo test test-fast clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --editable '.[test,scale]'
	touch $(STAMP)

# params.yaml is checked first: a bad shape (seeds: "2019") would otherwise reach DVC's own parser.
repro: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/lrd params check
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DVC_NO_ANALYTICS=1 $(VENV)/bin/dvc repro

# The whole pipeline in about a minute on a generated tiny dataset, in demo/.
demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DVC_NO_ANALYTICS=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(VENV)/bin/python scripts/demo.py

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DVC_NO_ANALYTICS=1 $(VENV)/bin/python -m pytest -q

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DVC_NO_ANALYTICS=1 $(VENV)/bin/python -m pytest -q -m "not e2e"

clean-venv:
	rm -rf $(VENV)
