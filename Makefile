# Two commands on a fresh machine with Python 3.11:  make repro   and   make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# which torch `make setup` installs: cpu (PyTorch's CPU wheel index as an extra index, when it
# answers) or cuda (the default index's build: CUDA on Linux, about 5.9 GB in a venv)
TORCH ?= cpu
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: setup repro exps test test-fast bench wheel-check export-shipped browser clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@case "$(TORCH)" in cpu|cuda) ;; *) echo "TORCH=$(TORCH): use TORCH=cpu (default) or TORCH=cuda"; exit 2;; esac
	@# the CPU index's torch is 2.13.0+cpu, which requirements.txt's torch==2.13.0 matches and pip
	@# prefers (a local version sorts above the plain one); the configured extra indexes are kept
	@if [ "$(TORCH)" = cpu ] && $(BIN)/python -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=5)" 2>/dev/null; then \
	  echo "setup: CPU torch from $(TORCH_CPU_INDEX) (TORCH=cuda for the CUDA build)"; \
	  PIP_EXTRA_INDEX_URL="$$($(BIN)/pip config get global.extra-index-url 2>/dev/null) $(TORCH_CPU_INDEX)" \
	    $(BIN)/pip install -r requirements.txt; \
	else \
	  if [ "$(TORCH)" = cpu ]; then echo "setup: note: $(TORCH_CPU_INDEX) did not answer within 5 s; torch comes from the default index (or a local wheel folder), which on Linux x86 is the CUDA build"; fi; \
	  $(BIN)/pip install -r requirements.txt; \
	fi
	$(BIN)/pip install -q --no-deps -e .
	touch $@

repro: setup            ## run the whole pipeline (demo data by default)
	LOWLIGHT_PIPELINE_START=$$(date +%s) $(BIN)/dvc repro

# the experiments side by side in under 120 columns: the params that differ, the headline metrics
# (lowlight/exps_table.py reads `dvc exp show --csv`; ARGS passes more options to dvc, e.g. ARGS=-A)
EXPS_DROP := ^(lowlight|stages|data|models|plots|metrics)/

exps: setup             ## `dvc exp show`, readable: changed params and the headline metrics
	@$(BIN)/dvc exp show --no-pager --csv --drop '$(EXPS_DROP)' $(ARGS) | $(BIN)/python -m lowlight.exps_table

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
