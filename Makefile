# dd0c/alert — the two commands that matter: `make run` and `make test`.
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8080
UV_VERSION := 0.13.9
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: install run test lint format bench clean

# Bootstraps a virtualenv with uv, then installs exactly what uv.lock pins, compiled to
# bytecode: uv installs none, and where PYTHONDONTWRITEBYTECODE is set (CI, many
# containers) every process then compiled every module it imported, about 2.5 s of CPU
# per start (serve's child was still starting seconds after serve answered).
$(VENV)/.installed: pyproject.toml uv.lock
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(VENV)/bin/uv sync --frozen --inexact --quiet --compile-bytecode
	$(VENV)/bin/python -m compileall -q src
	touch $@

install: $(VENV)/.installed

run: install  ## serve the embedded mode on http://$(HOST):$(PORT), data in ./data
	$(VENV)/bin/dd0c-alert serve --host $(HOST) --port $(PORT)

# Two pytest workers, a test file each at a time: much of the suite waits (servers
# starting, timeouts, subprocesses), so two workers take 11-14 minutes where one took
# 17 on two cores. Each worker starts its own PostgreSQL and Redis (tests/servers.py).
PYTEST_WORKERS ?= 2

test: install  ## the whole test suite: embedded mode, then the runtime tests on PostgreSQL + Redis
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile
	DD0C_TEST_BACKEND=production $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

lint: install  ## style, types and layer rules
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: install  ## throughput and latency figures, and the race against Alertmanager when installed
	$(VENV)/bin/python bench/worker.py
	$(VENV)/bin/python bench/ingest.py
	@if command -v prometheus-alertmanager >/dev/null && command -v wrk >/dev/null; then \
		$(VENV)/bin/python bench/race.py; \
	else echo "race skipped: apt-get install prometheus-alertmanager wrk"; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
