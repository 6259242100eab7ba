# phonetune: `make demo` sets up and runs the whole job on the synthesized demo corpus; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DATA ?= data/demo
# torch: the CPU build on machines without an NVIDIA GPU, the default (CUDA) build where nvidia-smi answers.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo demo-data test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed
	@command -v flite >/dev/null || { echo "flite is missing: run 'apt-get install -y flite' (Debian) first"; exit 1; }

demo-data: setup
	$(BIN)/phonetune demo-data --out $(DEMO_DATA)
	$(BIN)/phonetune inspect --data $(DEMO_DATA)

demo: demo-data

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python bench/loader.py

clean:
	rm -rf $(VENV) data/demo runs
