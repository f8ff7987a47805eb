# Two commands set everything up on a fresh machine (Python 3.11, make, network
# to the package index): `make wheelhouse` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/render-fastapi/requirements.in
TARGET := cp311-manylinux_2_17_x86_64

.PHONY: wheelhouse test unit lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

wheelhouse: $(VENV)/.installed
	$(BIN)/prewheel build -r $(EXAMPLE) -t $(TARGET) -o wheelhouse

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

unit: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q tests/unit

bench: $(VENV)/.test-installed
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
