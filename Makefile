# Two commands do everything from a fresh clone:  `make demo` (the main job) and `make test` (the test suite).
# Both create .venv, install torch==2.13.0 first (the CPU build; a plain `torch` would pull a multi-GB CUDA build),
# then metaxfer with its extras, then the Debian data packages when run as root.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.metaxfer-installed
DEMO_OUT ?= demo

.PHONY: demo test bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/debian-packages.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[data,dev]'
	$(BIN)/python -m pip install -q --no-deps animal-mnist
	bash scripts/setup-system-data.sh
	touch $(STAMP)

# The main job: every transfer path of the default recipe (digits, pip-only data) on the same target episodes; prints
# the table and writes $(DEMO_OUT)/report.html. Running it again continues (or reuses) the same folder.
demo: $(STAMP)
	$(BIN)/metaxfer run --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Speed checks against the peers, measured in the same run (docs/performance.md): episode sampling, meta-learning
# throughput (--quick: the 5-way 1-shot 1-step settings) and GAN steps/s.
bench: $(STAMP)
	VENV=$(VENV) bash scripts/install-bench-peers.sh
	$(BIN)/python benchmarks/episodes.py
	$(BIN)/python benchmarks/meta_throughput.py --quick
	$(BIN)/python benchmarks/gan_throughput.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
