"""The import contracts of pyproject.toml hold, and they do catch a broken boundary: a copy of the
packages with one forbidden import added fails `lint-imports` naming the contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "training", "serving", "leadscore")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed: run `make install`"
)


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(path: Path, line: str) -> None:
    text = path.read_text()
    marker = "from __future__ import annotations\n"
    path.write_text(
        text.replace(marker, marker + line + "\n", 1) if marker in text else line + "\n" + text
    )


def test_the_contracts_hold_on_the_code():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "module,line,contract",
    [
        ("serving/app.py", "import training.train  # noqa", "serving never imports training"),
        ("training/score.py", "import serving.model_store  # noqa",
         "training reads the service only through its policy store"),
        ("features/data/values.py", "import features.featurizer  # noqa",
         "features.data (the data contract) imports nothing else of ours"),
        ("features/policy/rules.py", "import pathlib  # noqa", "never read files"),
        ("features/featurizer.py", "import mlflow  # noqa", "only the model artifact module"),
    ],
)  # fmt: skip
def test_a_forbidden_import_fails_and_names_the_contract(tmp_path, module, line, contract):
    root = _copy(tmp_path)
    _add_import(root / module, line)
    result = _lint_imports(root)
    assert result.returncode != 0
    broken = result.stdout[result.stdout.index("Broken contracts") :]
    assert contract in broken, result.stdout
