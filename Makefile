# Two commands for a new user (README): `make demo` and `make test`. Both call `make setup`,
# which is idempotent: each step leaves a stamp in .stamps/ keyed on the files it read, so a
# second run takes a second.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := .stamps
# Hugging Face hubs cannot be reached from these machines: never try.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PYANNOTE_METRICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo demo-language test test-fast lint format bench clean-venv

setup: $(STAMPS)/system $(STAMPS)/venv

# Debian packages, installed only when a binary is missing (sudo when not root).
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ldconfig -p | grep -q libespeak-ng.so.1 || missing="$$missing libespeak-ng1"; \
	ldconfig -p | grep -q libsndfile.so || missing="$$missing libsndfile1"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@touch $@

# torch + torchaudio first (the CUDA-13 build from the machine's wheel store, which runs on the CPU), then
# the project with its pinned needs, then whisperX without its own pins (they downgrade torch).
$(STAMPS)/venv: pyproject.toml Makefile
	@mkdir -p $(STAMPS)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchaudio==2.11.0
	$(PIP) install -q -e '.[align,dev]'
	$(PIP) install -q --no-deps whisperx==3.8.6
	$(PY) -m data_prep.nltk_data
	@touch $@

demo: setup
	$(PY) -m vrt_recipes.demo

# Needs `make demo`'s English base (outputs/demo/base-model); trains it first when missing.
demo-language: setup
	$(PY) -m vrt_recipes.demo_language

test: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q --durations=25

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean-venv:
	rm -rf $(VENV) $(STAMPS)
