# Two commands a new user needs (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint format browser java compose serving-venv bench clean

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

# The house rules, checked by machines: lint and format, types (no new mypy errors), and the
# import contracts of pyproject.toml ([tool.importlinter]). CI runs this before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPY=$(BIN)/mypy bash scripts/mypy-ratchet.sh
	$(BIN)/lint-imports

# Apply the formatter and the safe lint fixes.
format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Java 17 for PySpark's local mode (the Spark tests; pyspark itself comes with requirements.lock).
java:
	@bash scripts/install-java.sh

# `docker compose config` for the deployment test (Debian's docker-compose when no plugin).
compose:
	@bash scripts/install-compose.sh

# The serving image's packages and code as a venv (.venv-serving), for the test that runs it
# against an `mlflow server` without a Docker engine; packages again only when the lock changes.
serving-venv:
	@PYTHON=$(PYTHON) bash scripts/serving-venv.sh .venv-serving

# On every core (pytest-xdist), each test file on one worker (its module fixtures built once):
# on 2 cores the suite took 11 min instead of 26 serially. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL = $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS) --dist loadfile)

test: install browser java compose serving-venv
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

# Everything but the tests marked slow (trained models, servers in subprocesses, notebooks).
test-fast: install
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_PARALLEL)

# The quick benchmarks (each prints a table with the command, the machine and the load average);
# the scale runs have their own options: see bench/README.md.
bench: install
	$(BIN)/python bench/policy.py --leads 100000 --repeat 200
	$(BIN)/python bench/feature_pipeline.py --leads 100000 --touchpoints 1000000 --repeats 200

clean:
	rm -rf $(VENV) .venv-serving mlflow.db mlartifacts leadscore.db demo-data .pytest_cache
