# make demo  - create .venv, install, run the main job on Oxford Flowers-102
# make test  - create .venv, install with every extra (dev, notebook, classical, ...), check the layers (lint-imports)
#              and style (ruff), run the tests (examples/flowers.ipynb too when FLOWERS102_DIR is set; NOTEBOOK=0 leaves it out;
#              gpu tests left out; a skip prints its reason, and under CI=true a missing optional part fails instead)
# make postgres - install Debian's PostgreSQL server when it is missing (needs root or sudo), for those tests
#
# Offline machines: make demo FLOWERS102_DIR=path/to/flowers102 (jpg/ + the two .mat files)
#                   WEIGHTS=path/to/mobilenet_v2-b0353104.pth (else the torch cache, else the Siamese net)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKSPACE ?= indexer-data
FLOWERS102_DIR ?=
WEIGHTS ?=
NOTEBOOK ?= 1
# CI machines have no CUDA: the gpu tests are deselected here (pytest -m gpu runs them on a GPU machine), so the
# summary never holds a skip for them
PYTEST_MARKERS := $(if $(filter 0,$(NOTEBOOK)),-m "not gpu and not notebook",-m "not gpu")
OUT ?= demo-output
ROOT_FLAG := $(if $(FLOWERS102_DIR),--root $(FLOWERS102_DIR),)
FLOWERS_JPG := $(if $(FLOWERS102_DIR),$(FLOWERS102_DIR)/jpg,$(WORKSPACE)/datasets/flowers-102/jpg)
INDEXER := $(BIN)/indexer --workspace $(WORKSPACE)
HAS_IMAGENET := $(BIN)/python -c "import sys; from models.weights import cached_imagenet_file; sys.exit(cached_imagenet_file('mobilenet_v2') is None)"

.PHONY: install test demo lint clean postgres

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,notebook,classical,serve,peers,postgres,scale]'
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	FLOWERS102_DIR=$(FLOWERS102_DIR) WEIGHTS=$(WEIGHTS) $(BIN)/pytest -q -rs $(PYTEST_MARKERS)

postgres:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  echo "PostgreSQL server present: $$(ls -d /usr/lib/postgresql/*/bin | tail -1)"; \
	else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; \
	fi

lint: install
	$(BIN)/ruff check .

demo: install
	$(INDEXER) data flowers102 $(ROOT_FLAG)
	$(INDEXER) status
	@if [ -n "$(WEIGHTS)" ]; then weights="$(WEIGHTS)"; elif $(HAS_IMAGENET); then weights=imagenet; fi; \
	if [ -n "$$weights" ]; then \
	  echo "training frozen ImageNet MobileNetV2 + head (weights: $$weights)"; \
	  $(INDEXER) train --network mobilenet_v2 --weights "$$weights" --freeze-backbone --image-size 128 --name demo; \
	else \
	  echo "no ImageNet weights (torch cache or WEIGHTS=path): training the Siamese network"; \
	  $(INDEXER) train --network siamese --name demo; \
	fi
	$(INDEXER) build --index flat --model demo
	$(INDEXER) build --index pca --model demo
	$(INDEXER) build --index ivf --model demo
	mkdir -p $(OUT)
	$(INDEXER) query $(FLOWERS_JPG)/image_00001.jpg --index ivf --grid $(OUT)/top10.png
	$(INDEXER) bench --model demo --indexes flat,pca,ivf,hnsw --json $(OUT)/bench.json \
	  --plot $(OUT)/recall_latency.png --markdown $(OUT)/bench.md
	@echo "demo done: report $(OUT)/bench.md, figures $(OUT)/bench.json, pictures $(OUT)/top10.png and $(OUT)/recall_latency.png"

clean:
	rm -rf $(VENV) build *.egg-info
