# MiniToolAI Bot: the two commands of the README are `make run` and `make test`.
# Every target sets up the virtual environment first if it is missing or stale.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run lint test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m bot

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -x -q

bench: install
	$(PY) bench/sse_throughput.py
	$(PY) bench/stream_pacing.py
	$(PY) bench/storage.py
	$(PY) bench/image_queue.py
	$(PY) bench/telegram_load.py
	$(PY) bench/discord_load.py
	$(PY) bench/spending_limits.py
	$(PY) bench/access_check.py
	$(PY) bench/attachments.py
	$(PY) bench/languages.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
