# unisr developer commands. `make demo` and `make test` are the two set-up commands.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-slow demo reproduce reproduce-ablations bench bench-prepare bench-longform gpu-check gpu-wheels lint clean

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

# The paper's claims side by side on the `base` synthetic corpus (a rerun resumes): writes
# docs/RESULTS.md and its plots. A labelled-only seed (synth_base_seed, 2,400 steps on the first
# 600 labelled clips), then six arms of 400 steps from its weights (synth_base), each evaluated;
# about 80 min on 2 idle cores once the corpus is built (4.5 min). The ablations add five arms
# from the same seed.
reproduce: setup
	$(PY) benchmarks/reproduce.py

reproduce-ablations: setup
	$(PY) benchmarks/reproduce.py --ablations

bench: setup
	$(PY) benchmarks/decode.py

# Long-form transcription (benchmarks/longform.py): joined test clips of 1, 5, 20 and 60 minutes,
# WER against the clips one by one, word times, real-time factor and memory. Trains its model
# first if it is not there (the base corpus and 2,400 labelled-only steps,
# about 20 min on 2 cores).
LONGFORM_MODEL ?= runs/longform_model/model.pt
bench-longform: setup $(LONGFORM_MODEL)
	$(PY) benchmarks/longform.py --checkpoint $(LONGFORM_MODEL) --hour --face --write

runs/longform_model/model.pt:
	$(PY) -c "from pathlib import Path; from unisr.demo import ensure_corpus; \
	  ensure_corpus(Path('data/synth_base_grid'), workers=2, size='base')"
	$(VENV)/bin/unisr train synth_base_seed trainer.out_dir=runs/longform_model

# Face-video preparation speed (frames/s per core) on the shared official-crop videos.
bench-prepare: setup
	$(PY) benchmarks/prepare.py

# One prepared command for a GPU machine (benchmarks/gpu_check.py, about 5 min on an H100/H200):
# the device tests and the GPU benchmark rows, written to BENCHMARKS.md. It needs no venv: a
# machine's own python3 with torch and lightning will do, plus the wheels of `make gpu-wheels`
# (PyAV, soundfile, jiwer) carried in .whl/ where it has no registry. DRY=1: toy sizes on the CPU.
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
GPU_CHECK_OUT ?= $(if $(DRY),/tmp/unisr-gpu-check.md)

gpu-check:
	@if [ -d .whl ] && ! $(GPU_PY) -c "import av, soundfile, jiwer" 2>/dev/null; then \
	  $(GPU_PY) -m pip install -q --no-index --no-deps --target /tmp/unisr-site .whl/*.whl; fi
	PYTHONPATH=$(CURDIR):/tmp/unisr-site $(GPU_PY) benchmarks/gpu_check.py \
	  $(if $(DRY),--dry) $(if $(GPU_CHECK_OUT),--out $(GPU_CHECK_OUT))

# Wheels for a GPU machine without a registry (Python 3.12, x86-64), into .whl/ (git-ignored).
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl av soundfile jiwer rapidfuzz

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
