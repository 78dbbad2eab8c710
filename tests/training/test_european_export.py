"""A European CRM export end to end through the real CLI (`validate`, `train`, `score`) and a real
MLflow SQLite store: semicolons, cp1252, French headers, decimal commas, Oui/Non, dd/mm/yyyy
dates and do-not-contact columns; and `train` leaving out, not crashing on, a column with nothing
to learn from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app

runner = CliRunner()

HEADER = (
    "Identifiant;Date de création;Secteur;Visites;Temps passé (min);Chiffre d'affaires (k€);"
    "Ne pas contacter;Liste rouge;Converti"
)


def european_export(path: Path, n: int = 400, seed: int = 3) -> pd.DataFrame:
    """Write a French CRM export as Excel saves it (cp1252, semicolons); return what it says."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for i in range(n):
        secteur = str(rng.choice(["Logiciel", "Santé", "Commerce", "Industrie"]))
        visites = int(rng.integers(0, 30))
        temps = float(rng.integers(0, 2000)) / 100  # 12,34
        ca = float(rng.integers(100, 900_000)) / 10  # 1.234,5
        dnc, rouge = rng.random() < 0.1, rng.random() < 0.1
        p = 1 / (1 + np.exp(-(-1.5 + 0.08 * visites + (secteur == "Logiciel"))))
        won = rng.random() < p
        day, month = int(rng.integers(1, 29)), int(rng.integers(1, 13))
        ca_text = f"{ca:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")
        rows.append(
            f"P{i:04d};{day:02d}/{month:02d}/2024;{secteur};{visites};{temps:.2f}".replace(".", ",")
            + f";{ca_text};{'Oui' if dnc else 'Non'};{'Oui' if rouge else 'Non'};"
            f"{'Oui' if won else 'Non'}"
        )
        truth.append({"lead_id": f"P{i:04d}", "ca": ca, "dnc": dnc, "rouge": rouge})
    path.write_bytes((HEADER + "\n" + "\n".join(rows) + "\n").encode("cp1252"))
    return pd.DataFrame(truth)


@pytest.mark.slow
def test_a_european_export_validates_trains_and_scores_with_the_do_not_contact_rule(
    tracking, tmp_path
):
    export = tmp_path / "prospects.csv"
    truth = european_export(export)
    options = ["--leads", str(export), "--id", "Identifiant", "--label", "Converti"]

    # dd/mm/yyyy is never guessed: validate says which column and how to fix it
    result = runner.invoke(app, ["validate", *options])
    assert result.exit_code == 1
    assert f"ERROR {export}, column 'Date de création': " in result.output
    assert "cannot be read as dates month-first (the default): the dates are day-first" in (
        result.output
    )
    assert "fix: set 'dayfirst: true' in the config or pass --dayfirst" in result.output

    result = runner.invoke(app, ["validate", *options, "--dayfirst", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    notes = {(f["column"], f["message"]) for f in report["findings"] if f["level"] == "note"}
    assert ("Chiffre d'affaires (k€)", "numbers read with a decimal comma (1.234,5 = 1234.5)") in (
        notes
    )
    assert ("Temps passé (min)", "numbers read with a decimal comma (1.234,5 = 1234.5)") in notes
    types = next(f["message"] for f in report["findings"] if f["message"].startswith("attribute"))
    assert "boolean: Ne pas contacter, Liste rouge" in types
    assert "numeric: Visites, Temps passé (min), Chiffre d'affaires (k€)" in types

    config = tmp_path / "run.yaml"  # a policy that sends every lead to sales
    config.write_text(
        "training:\n  search: tiny\n  cv_folds: 2\n"
        "policy:\n  sales_threshold: 0\n  nurture_threshold: 0\n"
    )
    result = runner.invoke(app, ["train", *options, "--dayfirst", "--config", str(config),
                                 "--do-not-contact", "Liste rouge", "--timezone", "Europe/Paris",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["version"] == "1"

    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["score", "--model", summary["model_uri"], "--leads", str(export),
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, dtype={"lead_id": str}).merge(truth, on="lead_id")
    assert len(scores) == 400
    marked = scores["dnc"] | scores["rouge"]  # 'Ne pas contacter: Oui' (built in), 'Liste rouge'
    assert 40 < marked.sum() < 120
    assert (scores.loc[marked, "decision"] == "disqualify").all()
    assert scores.loc[marked, "hard_rule"].str.contains("asked not to be contacted").all()
    assert (scores.loc[~marked, "decision"] == "sales").all()
    assert scores.loc[~marked, "hard_rule"].isna().all()

    # the API path reads the model's configured column too (one lead, and many leads)
    from features.model.artifact import load_model_scorer

    scorer = load_model_scorer(summary["model_uri"])
    assert scorer.metadata["data_config"]["do_not_contact_columns"] == ["Liste rouge"]
    assert scorer.metadata["data_config"]["dayfirst"] is True
    # the dates are Paris dates: their weekday and month are read on Paris's clocks, said
    # without an hour (read in UTC they were the evening before, at 22:00 or 23:00)
    (spec,) = [c for c in scorer.featurizer.attributes_.columns_
               if c["column"] == "Date de création"]  # fmt: skip
    assert spec["zone"] == "Europe/Paris" and spec["dates_only"] is True
    first = scorer.featurizer.attributes_.transform_record({"Date de création": "2024-07-01"})
    assert first[:3].tolist() == [0.0, 0.0, 7.0]  # Monday 1 July, midnight in Paris
    leads = [
        {"lead_id": f"A{i}", "attributes": {"Secteur": "Logiciel", "Visites": 20,
         "Liste rouge": "Oui" if i % 2 else "Non", "Ne pas contacter": "non"}}
        for i in range(12)
    ]  # fmt: skip
    for batch in (leads[:1], leads[:2], leads):
        decisions = [r["decision"] for r in scorer.score_records(batch)]
        assert decisions == ["disqualify" if i % 2 else "sales" for i in range(len(batch))]


@pytest.mark.slow
def test_train_leaves_out_a_column_that_ends_up_empty_instead_of_crashing(tracking, tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    leads = pd.DataFrame({
        "id": [f"L{i}" for i in range(n)], "source": rng.choice(["web", "ads", "event"], n),
        "visits": rng.integers(0, 10, n), "score": rng.choice(["high", "low", "Select"], n),
        "country": "France", "won": rng.integers(0, 2, n),
    })  # fmt: skip
    leads.to_csv(tmp_path / "leads.csv", index=False)
    config = tmp_path / "run.yaml"
    config.write_text("training:\n  search: tiny\n  cv_folds: 2\n")
    options = ["--leads", str(tmp_path / "leads.csv"), "--id", "id", "--label", "won",
               "--type", "score=numeric"]  # fmt: skip
    empty = "column 'score': no value can be read as numeric: the column is empty and is not used"
    constant = (
        "column 'country': column has the same value in every row and is not used as a feature"
    )

    result = runner.invoke(app, ["validate", *options])
    assert result.exit_code == 0, result.output
    assert empty in result.output and constant in result.output

    result = runner.invoke(app, ["train", *options, "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output  # was a scikit-learn traceback
    assert "Traceback" not in result.output
    # one line each: not folded at 80 columns when stderr is not a terminal
    assert f"warning: {empty}\n" in result.output and f"warning: {constant}\n" in result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert empty in summary["warnings"] and constant in summary["warnings"]
