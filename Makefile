# phonetune: `make demo` sets up and runs the whole job on the synthesized demo corpus; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DATA ?= data/demo
# torch is installed before the project: on this workplace's machines pip finds the CPU build of 2.13.0 on disk;
# elsewhere the same pin takes PyPI's Linux wheel, which is the CUDA build. Override with TORCH_SPEC=... if needed.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo demo-data test bench bench-search clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# flite synthesizes the demo corpus. setup installs it when it can (apt-get, run as root or through passwordless
# sudo); otherwise it prints the one command to run.
FLITE_HINT := run 'sudo apt-get install -y flite' (Debian/Ubuntu; elsewhere install flite with the system's package manager), then make setup again

setup: $(VENV)/.installed
	@command -v flite >/dev/null && exit 0; \
	if ! command -v apt-get >/dev/null; then echo "flite is missing: $(FLITE_HINT)"; exit 1; \
	elif [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "flite is missing: $(FLITE_HINT)"; exit 1; fi; \
	echo "flite is missing; installing it: $${sudo:+$$sudo }apt-get install -y flite"; \
	install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q flite"; \
	$$install >/dev/null || { $$sudo apt-get update -q >/dev/null && $$install >/dev/null; } \
		|| { echo "installing flite failed: $(FLITE_HINT)"; exit 1; }; \
	command -v flite >/dev/null || { echo "flite was installed but is not on PATH ($$PATH)"; exit 1; }

demo-data: setup
	$(BIN)/phonetune demo-data --out $(DEMO_DATA)
	$(BIN)/phonetune inspect --data $(DEMO_DATA)

DEMO_STUDY ?= studies/demo.toml
DEMO_WORKERS ?= 2
DEMO_SET := --set data.root=$(DEMO_DATA)

# The whole job on the demo corpus: a 2-worker search on SQLite with pruning, promotion of the top 2 to the full
# training data, the ablation sheet, the report, and the winner retrained, predicted and scored. Each step resumes
# or skips finished work, so an interrupted `make demo` continues where it stopped.
demo: demo-data
	$(BIN)/phonetune search --config $(DEMO_STUDY) --workers $(DEMO_WORKERS) $(DEMO_SET)
	$(BIN)/phonetune promote --config $(DEMO_STUDY) --top 2 $(DEMO_SET)
	$(BIN)/phonetune export --config $(DEMO_STUDY) --out ablation_sheet.csv $(DEMO_SET)
	$(BIN)/phonetune report --config $(DEMO_STUDY) --out studies/demo/report.html $(DEMO_SET)
	$(BIN)/phonetune retrain --config $(DEMO_STUDY) $(DEMO_SET)
	@echo "study:      studies/demo.db (search trials in studies/demo/trials/, promoted runs in studies/demo/full/, the winner in studies/demo/retrain/)"
	@echo "sheet:      ablation_sheet.csv    report: studies/demo/report.html"
	@echo "dashboard:  $(BIN)/phonetune dashboard --config $(DEMO_STUDY)"

test: setup
	$(BIN)/python -m pytest -q tests

# The quick benchmarks (a few minutes); figures and the commands behind them are in BENCHMARKS.md.
bench: setup
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/trainer.py
	$(BIN)/python bench/storage.py

# Pruning against no pruning on the demo corpus: two whole searches, 25-35 minutes on 2 cores.
bench-search: demo-data
	$(BIN)/python bench/search.py --trials 14 --epochs 9 --train-fraction 0.1

clean:
	rm -rf $(VENV) data/demo runs
