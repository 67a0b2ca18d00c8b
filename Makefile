# unisr developer commands. `make demo` and `make test` are the two set-up commands.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-slow demo reproduce reproduce-ablations bench bench-prepare lint clean

# Idempotent: creates the venv, installs torch first (unless one is already importable, e.g. on a
# GPU image), pins the installed torch in a constraints file, then installs unisr with the test
# and prepare (MediaPipe face landmarks) extras.
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; fi
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	@$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e ".[prepare,test]"
	@touch $@

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

demo: setup
	$(VENV)/bin/unisr demo

# The paper's claims side by side on the `base` synthetic corpus (under 2 hours on 2 CPU cores,
# the corpus included; a rerun resumes): writes docs/RESULTS.md and its plots. The ablations add
# five arms from the same shared start (about an hour more).
reproduce: setup
	$(PY) benchmarks/reproduce.py

reproduce-ablations: setup
	$(PY) benchmarks/reproduce.py --ablations

bench: setup
	$(PY) benchmarks/decode.py

# Face-video preparation speed (frames/s per core) on the shared official-crop videos.
bench-prepare: setup
	$(PY) benchmarks/prepare.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
