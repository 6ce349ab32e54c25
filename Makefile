# The two commands of the README:  `make book`  and  `make test`.
# Both create the virtual environment first if it is missing or out of date.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book chapters html test test-fast organism

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: its CPU wheel is on local disk; an unpinned torch pulls a CUDA build
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## build the whole book on the organism: run every chapter through papermill, then the HTML
book: $(STAMP)
	$(PY) -m mfutils.runner all

## execute the chapters only (no HTML)
chapters: $(STAMP)
	$(PY) -m mfutils.runner execute

## build the HTML from the already executed chapters (execution off, warnings are errors)
html: $(STAMP)
	$(PY) -m mfutils.runner html

## every test: unit and tiny-model tests, then nbval over the executed chapters
test: $(STAMP)
	$(PY) -m pytest tests -q
	# nbval over the executed chapters (none are committed yet: then this step is skipped)
	if ls book/chapters/*.ipynb >/dev/null 2>&1; then \
	  $(PY) -m pytest -q --nbval book/chapters --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider; \
	else echo "no executed chapters in book/chapters: nbval skipped"; fi

## unit tests without the slow ones
test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow"

## optional: retrain the organism from scratch (deterministic; compares against the shipped weights)
organism: $(STAMP)
	$(PY) -m mfutils.train_organism --out models/organism
