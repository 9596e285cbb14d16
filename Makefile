# Two commands on a fresh machine with Python 3.11:  make repro   and   make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast bench wheel-check export-shipped browser clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

repro: setup            ## run the whole pipeline (demo data by default)
	$(BIN)/dvc repro

test: setup browser     ## the full test suite (what CI runs)
	$(BIN)/pytest

# the browser test drives Debian's Chromium; installed here when missing and apt-get can (root)
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium and chromium-driver for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "no chromium/chromedriver and no root apt-get: the browser test will be skipped"; fi; \
	fi

wheel-check: setup      ## build wheel + sdist, install the wheel alone in a clean venv (<= 300 MB, no torch), enhance a photo with it
	$(BIN)/python benchmarks/install_size.py

# the shipped ONNX pair from lowlight/weights/model.pt and quantiles.ubj: rerun whenever those change;
# checked against PyTorch + XGBoost on LOL pairs when ../shared/datasets/LOL is there, else on synthetic ones
LOL_PAIRS ?= ../shared/datasets/LOL/our485
export-shipped: setup   ## re-export lowlight/weights/model.onnx and quantiles.onnx from the .pt and .ubj
	$(BIN)/python -m lowlight.export --shipped $(if $(wildcard $(LOL_PAIRS)/low),--data $(LOL_PAIRS))

test-fast: setup        ## skip the slow tests while iterating
	$(BIN)/pytest -m "not slow"

BENCHES := eval_speed histmap_speed train_throughput enhance_speed

bench: setup            ## print the speed and memory figures (benchmarks/ablation.py is separate: it trains)
	for b in $(BENCHES); do echo "== benchmarks/$$b.py"; $(BIN)/python benchmarks/$$b.py || exit 1; done

clean-venv:
	rm -rf $(VENV)
