# Two commands a new user needs (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test browser bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The main job: demo data -> train and register in MLflow (SQLite) -> serve on 127.0.0.1:8000.
demo: install
	$(BIN)/leadscore quickstart

# Headless Chromium for the /ops page test (Debian packages; needs root or sudo).
browser:
	@bash scripts/install-browser.sh

test: install browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) mlflow.db mlartifacts leadscore.db demo-data .pytest_cache
