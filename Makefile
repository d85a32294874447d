# One developer loop, the same in the README and in .ci/run.
VENV ?= .venv
PY := $(VENV)/bin/python
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install lint format mypy test test-slow bench demo all

# Idempotent: a stamp file skips pip when pyproject.toml has not changed since the last install.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install
	scripts/ensure-redis.sh
	$(VENV)/bin/pytest -q

test-slow:
	$(VENV)/bin/pytest -q -m slow

bench:
	$(PY) -m bench

demo: install
	$(VENV)/bin/btq demo

all: lint test
