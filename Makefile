# One entry point for installing, running and testing recadapt.
# `make quickstart` and `make test` each install what they need into .venv first.
VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch; on a GPU machine override, e.g. `make TORCH=torch==2.13.0+cu126 ...`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install quickstart test lint bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

quickstart: install
	$(BIN)/recadapt quickstart

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
