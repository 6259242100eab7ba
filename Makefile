# phonetune: `make demo` sets up and runs the whole job on the synthesized demo corpus; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DATA ?= data/demo
# torch is installed before the project: on this workplace's machines pip finds the CPU build of 2.13.0 on disk;
# elsewhere the same pin takes PyPI's Linux wheel, which is the CUDA build. Override with TORCH_SPEC=... if needed.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo demo-data test bench bench-search bench-quality bench-fidelity clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# -qq: errors only (pip's warnings about this machine's package indexes are not the user's to act on).
$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq "$(TORCH_SPEC)"
	$(BIN)/pip install -qq -e ".[dev]"
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

# The job validates every split it reads; `phonetune inspect --data data/demo` shows the per-class counts.
demo-data: setup
	$(BIN)/phonetune demo-data --out $(DEMO_DATA)

DEMO_STUDY ?= studies/demo.toml
DEMO_WORKERS ?= 2
# The whole job's wall-clock budget: with setup and the corpus, a fresh clone finishes `make demo` in about 13 min.
DEMO_BUDGET ?= 9m
# The demo's size cap: a 300k-parameter model is trained out in a few minutes on two cores, so the job has time to
# search, as a 20M model leaves a GPU. `make demo DEMO_PARAM_LIMIT=20000000` runs the HW1P2 rule (a direct plan here).
DEMO_PARAM_LIMIT ?= 300000
DEMO_SET := --set data.root=$(DEMO_DATA) --set study.param_limit=$(DEMO_PARAM_LIMIT)

# The whole job on the demo corpus under one budget (`phonetune run`): the planner times this machine and splits the
# budget; a screen of whole short runs at the size cap on SQLite (the warm starts, then moves of the best); the
# winner trained to the deadline, the scored test submission, the ablation sheet and the report. Interrupted, the
# same command continues where it stopped and spends only the budget left.
demo: demo-data
	$(BIN)/phonetune run --config $(DEMO_STUDY) --budget $(DEMO_BUDGET) --workers $(DEMO_WORKERS) \
		--sheet ablation_sheet.csv $(DEMO_SET)
	@echo "study:      studies/demo.db (search trials in studies/demo/trials/, final runs in studies/demo/full/)"
	@echo "dashboard:  $(BIN)/phonetune dashboard --config $(DEMO_STUDY) $(DEMO_SET)  (a study's Note page: the final model)"

test: setup
	$(BIN)/python -m pytest -q --durations=15 tests

# The quick benchmarks (a few minutes); figures and the commands behind them are in BENCHMARKS.md.
bench: setup
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/trainer.py
	$(BIN)/python bench/storage.py

# Pruning against no pruning on the demo corpus: two whole searches, 25-35 minutes on 2 cores.
bench-search: demo-data
	$(BIN)/python bench/search.py --trials 14 --epochs 9 --train-fraction 0.1

# Accuracy at an equal budget, the capped cell: `phonetune run` against the expert warm start resized to a 1M size
# cap and trained to the deadline, 20 minutes per arm, one seed (40 minutes on 2 cores).
bench-quality: demo-data
	$(BIN)/python bench/quality.py --data $(DEMO_DATA) --budget 20m --seeds 1 --arms a,b --set study.param_limit=1000000

# Does the screen rank what the final run trains? The job's own plan for the capped cell (20 minutes, a 1M size cap),
# 8 screen trials (the warm start included), then every one trained at the final horizon: Spearman of screen against
# final dev accuracy, and the regret of the screen's pick (about 90 minutes on 2 cores).
bench-fidelity: demo-data
	$(BIN)/python bench/fidelity.py --data $(DEMO_DATA) --budget 20m --trials 8 --set study.param_limit=1000000

clean:
	rm -rf $(VENV) data/demo runs
