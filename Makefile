# Two entry points, each of which sets itself up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU machines: torch 2.13.0's CPU wheel first, or pip pulls a multi-GB CUDA build. GPU machines: make setup-gpu.
TORCH ?= torch==2.13.0

.PHONY: setup setup-gpu demo test test-fast bench gpu-wheels clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup-gpu: setup
	$(PY) -m pip install -q -e ".[gpu,tracking]"

demo: setup
	$(VENV)/bin/sgpipe all --config configs/tiny.yaml

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile --durations=10

# The inner loop: every test but those marked slow (fault injection, determinism, DDP, sweeps). CI runs `make test`.
test-fast: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

bench: setup
	$(PY) -m benchmarks

# Wheels for benchmarks/gpu_check.py on an offline CUDA machine (Python 3.12): gpu-wheels/, git-ignored, <= 64 MiB.
gpu-wheels: setup
	$(PY) -m benchmarks.gpu_wheels --out gpu-wheels

clean:
	rm -rf runs reports .pytest_cache
