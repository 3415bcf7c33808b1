# Two commands a fresh machine needs: `make demo` and `make test`.
# Each creates .venv on first use: the pinned CPU torch first (a looser requirement
# would pull several GB of CUDA packages), then cnnzoo with its dev extras.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: demo test test-all bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m cnnzoo.cli.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/summarize_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
