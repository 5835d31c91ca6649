# make demo  - create .venv, install, run the main job on Oxford Flowers-102
# make test  - create .venv, install with dev extras, run the test suite
#
# Offline machines: make demo FLOWERS102_DIR=path/to/flowers102 (jpg/ + the two .mat files)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKSPACE ?= indexer-data
FLOWERS102_DIR ?=
ROOT_FLAG := $(if $(FLOWERS102_DIR),--root $(FLOWERS102_DIR),)

.PHONY: install test demo lint clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

test: install
	FLOWERS102_DIR=$(FLOWERS102_DIR) $(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .

demo: install
	$(BIN)/indexer --workspace $(WORKSPACE) data flowers102 $(ROOT_FLAG)
	$(BIN)/indexer --workspace $(WORKSPACE) status

clean:
	rm -rf $(VENV) build *.egg-info
