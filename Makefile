# Two commands do all set-up on a fresh clone: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# torch, installed before the package so that pip keeps it. On Linux the public index serves
# torch with CUDA (several GB); for the CPU-only build the PyTorch project points pip at its
# CPU wheel index:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# TORCH_SPEC picks the version (pyproject.toml allows torch >=2.13,<2.15), e.g.
#   make test TORCH_SPEC=torch==2.14.1 TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@echo "set-up: a virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "set-up: $(TORCH_SPEC)$(if $(TORCH_INDEX), from $(TORCH_INDEX),) (about 200 MB for the CPU build)"
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) )$(TORCH_SPEC)
	@echo "set-up: hnntrain (editable) with numpy, scipy, typer, rich, matplotlib; for tests pytest, hypothesis, distributed, import-linter"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)
	@echo "set-up done: $(VENV)/bin/hnntrain; MNIST is fetched into ~/.cache/hnntrain on first use (about 55 MB, hash-checked)"

demo: $(STAMP)
	$(VENV)/bin/hnntrain compare --device abrupt-ltd --samples 20000 --c2c 0.02 --out runs/compare

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache  # the layers contract in pyproject.toml
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs
