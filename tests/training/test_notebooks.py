"""The notebooks run top to bottom against demo data and a model trained on it."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.training.conftest import demo_config
from training.train import train

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_notebooks_are_stored_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize("name", ["01-explore-leads.ipynb", "02-evaluate-model.ipynb"])
def test_notebook_runs_on_demo_data(name, demo_dir, tracking, monkeypatch):
    if name.startswith("02"):
        train(demo_config(demo_dir), seed=1)
    monkeypatch.setenv("LEADSCORE_DATA", str(demo_dir))
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOKS.parent))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS.parent)}},
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
    if name.startswith("02"):
        assert "lead-scoring v1" in outputs and "score" in outputs
    else:
        assert "3,000 leads" in outputs
