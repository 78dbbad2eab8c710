"""The serving image's lock (requirements-serving.lock, the Dockerfile's default `serving` target)
holds what `leadscore serve` imports and none of the training-only or MLflow-server packages.

Fast and offline: the imports of serving/, features/ and leadscore/ are read with ast (every
`import`, inside functions too, and every `find_spec("...")`), mapped to the distributions that
provide them in this (full) install, and looked up in the lock. tests/serving/
test_serving_install.py runs a venv built from the lock against a real `mlflow server`.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"features", "serving", "leadscore", "training", "tests", "bench"}
# Spark's entry point: the `spark` extra, used by training's `--engine spark`, never by serving.
NOT_SERVED = {ROOT / "features" / "spark.py"}
# Packages the service needs without an import statement naming them, and where it asks for them.
NAMED_AT_RUN_TIME = {
    "psycopg": ("serving/config.py", "postgresql+psycopg://"),  # SQLAlchemy's dialect, by URL
    "uvloop": ("serving/cli.py", 'loop="uvloop"'),  # uvicorn's event loop, by name
    "httptools": ("serving/http.py", "httptools_impl"),  # uvicorn's HTTP parser
}
# What the serving image must not hold: training-only (matplotlib: training/evaluate.py's plots),
# the MLflow server (mlflow and its flask, graphene, gunicorn, docker...) and Spark.
NOT_IN_SERVING = {"matplotlib", "mlflow", "flask", "gunicorn", "graphene", "docker", "pyspark"}
# pyproject.toml's dependencies that requirements-serving.in leaves out, and why
LEFT_OUT = {
    "matplotlib": "training/evaluate.py's plots only",
    "mlflow": "mlflow-skinny instead: the client half, no tracking server",
    "httpx": "imported by tests and bench only",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(name: str) -> dict[str, str]:
    """{distribution: version} of a lock file compiled by uv."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            distribution, version = line.split(";")[0].strip().split("==")
            pins[normalise(distribution.split("[")[0])] = version
    return pins


def requirement_names(lines: list[str]) -> dict[str, str]:
    """{distribution: the requirement as written} of requirement lines."""
    names = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            names[normalise(re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0])] = line
    return names


def third_party_imports() -> dict[str, set[str]]:
    """{top-level module: files naming it} for serving/, features/ and leadscore/ (but Spark's)."""
    found: dict[str, set[str]] = {}
    for package in ("serving", "features", "leadscore"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path in NOT_SERVED:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (  # importlib.util.find_spec("fastapi_offline")
                    isinstance(node, ast.Call)
                    and getattr(node.func, "attr", getattr(node.func, "id", None)) == "find_spec"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    names = [str(node.args[0].value)]
                for name in names:
                    top = name.split(".")[0]
                    if top not in OURS and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_serving_lock_has_no_training_or_mlflow_server_package():
    serving = read_lock("requirements-serving.lock")
    assert "mlflow-skinny" in serving
    assert not NOT_IN_SERVING & set(serving), sorted(NOT_IN_SERVING & set(serving))


def test_the_serving_lock_pins_the_versions_of_the_full_image():
    """Compiled with `-c requirements-runtime.lock`: both images run the same versions."""
    serving = read_lock("requirements-serving.lock")
    runtime = read_lock("requirements-runtime.lock")
    assert set(serving) <= set(runtime), sorted(set(serving) - set(runtime))
    differ = {k: (v, runtime[k]) for k, v in serving.items() if runtime[k] != v}
    assert differ == {}, f"regenerate requirements-serving.lock (CONTRIBUTING.md): {differ}"


def test_every_module_serving_imports_comes_from_the_serving_lock():
    serving = read_lock("requirements-serving.lock")
    providers = metadata.packages_distributions()
    imports = third_party_imports()
    assert {"fastapi", "mlflow", "skops", "sklearn", "plotly", "fastapi_offline"} <= set(imports)
    missing = {}
    for module, files in sorted(imports.items()):
        distributions = {normalise(d) for d in providers.get(module, [])}
        assert distributions, f"{module} (imported by {sorted(files)}) is not installed here"
        if not distributions & set(serving):
            missing[module] = (sorted(distributions), sorted(files)[:3])
    assert missing == {}, (
        f"imported by the service, not in requirements-serving.lock: {missing}; add the "
        "distribution to requirements-serving.in and regenerate the lock (CONTRIBUTING.md)"
    )


@pytest.mark.parametrize("distribution", sorted(NAMED_AT_RUN_TIME))
def test_packages_named_at_run_time_are_in_the_serving_lock(distribution):
    path, needle = NAMED_AT_RUN_TIME[distribution]
    assert needle in (ROOT / path).read_text(), f"{path} no longer needs {distribution}?"
    assert distribution in read_lock("requirements-serving.lock")


def test_the_serving_requirements_are_pyproject_dependencies_but_the_training_only_ones():
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = requirement_names(pyproject["project"]["dependencies"])
    serving_in = requirement_names((ROOT / "requirements-serving.in").read_text().splitlines())
    assert set(declared) - set(serving_in) == set(LEFT_OUT)
    assert set(serving_in) - set(declared) == {"mlflow-skinny"}
    # the same lower bounds as pyproject.toml
    for name, requirement in serving_in.items():
        if name in declared:
            assert requirement == declared[name], name
