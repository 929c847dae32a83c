# Two commands matter: `make run` serves the demo, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint setup demo-data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(STAMP)
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py load_protocol fixtures/mastocytosis.json
	DEBUG=true $(BIN)/python manage.py import_protocol_cases mastocytosis --version 1 fixtures/cases/mastocytosis-vignettes.json
	DEBUG=true $(BIN)/python manage.py load_protocol fixtures/mastocytosis-v2.json
	DEBUG=true $(BIN)/python manage.py import_protocol_cases mastocytosis --version 2 fixtures/cases/mastocytosis-v2-vignettes.json
	DEBUG=true $(BIN)/python manage.py load_demo fixtures/demo.json

run: setup
	DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 db.sqlite3-*
